package kdplocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// resource is one resource of a CloudFormation template.
type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Metadata   map[string]any `json:"Metadata"`
}

// stackTemplate is a synthesized stack: its resources and each logical ID's construct path.
type stackTemplate struct {
	name      string
	dir       string // the cloud assembly directory holding the template and the assets
	resources map[string]resource
	paths     map[string]string // logical ID -> construct path without the leading "/" and trailing "/Resource"
}

// table is a DynamoDB table of the template, with what the emulator needs.
type table struct {
	logicalID string
	keys      []keyAttr
	ttl       string
}

// keyAttr is one key attribute of a table.
type keyAttr struct {
	name, typ, keyType string
}

// pipeline is what kdp local recreates: a Kinesis stream, the mapping and function reading it, the tables the
// function writes and the on-failure destination.
type pipeline struct {
	path         string
	streamID     string
	shards       int32
	onDemand     bool
	encrypted    bool
	mappingID    string
	mapping      map[string]any
	functionID   string
	function     map[string]any
	assetDir     string
	table        table
	errorTable   *table
	aggTable     *table // the aggregate table, with Aggregates
	onFailureID  string
	onFailureTyp string // AWS::SQS::Queue, AWS::S3::Bucket, AWS::SNS::Topic or "" for none
}

// usageError is an error in what the user asked for (exit status 2).
type usageError struct{ msg string }

// Error returns the usage problem.
func (e *usageError) Error() string { return e.msg }

// loadStack reads the stack named name from the cloud assembly in dir (manifest.json), following nested assemblies
// (stages) when the stack is not at the top level.
func loadStack(dir, name string) (*stackTemplate, error) {
	st, found, err := findStack(dir, name, map[string]bool{})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &usageError{fmt.Sprintf("no stack %q in %s (run cdk synth first; stacks: %s)", name, dir, strings.Join(stackNames(dir), ", "))}
	}
	return st, nil
}

// manifest is the part of a cloud assembly's manifest.json kdp local reads.
type manifest struct {
	Artifacts map[string]struct {
		Type        string `json:"type"`
		DisplayName string `json:"displayName"`
		Properties  struct {
			TemplateFile string `json:"templateFile"`
			Directory    string `json:"directoryName"`
		} `json:"properties"`
		Metadata               map[string][]metadataEntry `json:"metadata"`
		AdditionalMetadataFile string                     `json:"additionalMetadataFile"`
	} `json:"artifacts"`
}

type metadataEntry struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

func readManifest(dir string) (*manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, &usageError{fmt.Sprintf("%s is not a cloud assembly (run cdk synth first): %v", dir, err)}
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, "manifest.json"), err)
	}
	return &m, nil
}

// stackNames lists the stacks of the assembly in dir and its nested assemblies, for error messages.
func stackNames(dir string) []string {
	m, err := readManifest(dir)
	if err != nil {
		return nil
	}
	var names []string
	for id, a := range m.Artifacts {
		switch a.Type {
		case "aws:cloudformation:stack":
			names = append(names, displayName(id, a.DisplayName))
		case "cdk:cloud-assembly":
			names = append(names, stackNames(filepath.Join(dir, a.Properties.Directory))...)
		}
	}
	sort.Strings(names)
	return names
}

func displayName(id, display string) string {
	if display != "" {
		return display
	}
	return id
}

func findStack(dir, name string, seen map[string]bool) (*stackTemplate, bool, error) {
	if seen[dir] {
		return nil, false, nil
	}
	seen[dir] = true
	m, err := readManifest(dir)
	if err != nil {
		return nil, false, err
	}
	ids := make([]string, 0, len(m.Artifacts))
	for id := range m.Artifacts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := m.Artifacts[id]
		if a.Type != "aws:cloudformation:stack" || (id != name && a.DisplayName != name) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, a.Properties.TemplateFile))
		if err != nil {
			return nil, false, fmt.Errorf("read template of %s: %w", name, err)
		}
		var tmpl struct {
			Resources map[string]resource `json:"Resources"`
		}
		if err := json.Unmarshal(raw, &tmpl); err != nil {
			return nil, false, fmt.Errorf("read template of %s: %w", name, err)
		}
		st := &stackTemplate{name: name, dir: dir, resources: tmpl.Resources, paths: map[string]string{}}
		meta := a.Metadata
		if a.AdditionalMetadataFile != "" {
			if raw, err := os.ReadFile(filepath.Join(dir, a.AdditionalMetadataFile)); err == nil {
				var extra map[string][]metadataEntry
				if json.Unmarshal(raw, &extra) == nil {
					meta = extra
				}
			}
		}
		for path, entries := range meta {
			for _, e := range entries {
				if id, ok := e.Data.(string); ok && e.Type == "aws:cdk:logicalId" {
					st.paths[id] = cleanPath(path)
				}
			}
		}
		for id, r := range tmpl.Resources { // path metadata in the template, when the app keeps it
			if p, ok := r.Metadata["aws:cdk:path"].(string); ok && st.paths[id] == "" {
				st.paths[id] = cleanPath(p)
			}
		}
		return st, true, nil
	}
	for _, id := range ids {
		if a := m.Artifacts[id]; a.Type == "cdk:cloud-assembly" {
			st, found, err := findStack(filepath.Join(dir, a.Properties.Directory), name, seen)
			if err != nil || found {
				return st, found, err
			}
		}
	}
	return nil, false, nil
}

func cleanPath(p string) string {
	return strings.TrimSuffix(strings.Trim(p, "/"), "/Resource")
}

// refOf returns the logical ID v refers to with {"Ref": ID} or {"Fn::GetAtt": [ID, ...]}.
func refOf(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	if id, ok := m["Ref"].(string); ok {
		return id, true
	}
	if att, ok := m["Fn::GetAtt"].([]any); ok && len(att) > 0 {
		id, ok := att[0].(string)
		return id, ok
	}
	return "", false
}

// importedHint describes a value that names a resource outside the template, for error messages.
func importedHint(v any) string {
	if m, ok := v.(map[string]any); ok {
		if _, ok := m["Fn::ImportValue"]; ok {
			return "an Fn::ImportValue"
		}
	}
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q, a resource outside the stack", s)
	}
	return "a value kdp local cannot resolve"
}

// The marker the construct writes as Metadata on each pipeline's event source mapping (kinesispipeline's
// PipelineMetadataKey and PipelineMetadataVersion; this package does not import the construct, which needs CDK).
const (
	markerKey     = "kdp:pipeline"
	markerVersion = 1
)

// pipelines finds every pipeline of the stack: each event source mapping with the construct's marker. A mapping
// without it whose function has PIPELINE_TABLE_NAME comes from an older version of the construct: an error.
func (st *stackTemplate) pipelines() ([]*pipeline, error) {
	var out []*pipeline
	var errs []error
	ids := make([]string, 0, len(st.resources))
	for id := range st.resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r := st.resources[id]
		if r.Type != "AWS::Lambda::EventSourceMapping" {
			continue
		}
		fnID, ok := refOf(r.Properties["FunctionName"])
		if !ok || st.resources[fnID].Type != "AWS::Lambda::Function" {
			continue
		}
		fn := st.resources[fnID].Properties
		env, _ := dig(fn, "Environment", "Variables").(map[string]any)
		marker, marked := r.Metadata[markerKey].(map[string]any)
		if !marked {
			if _, ok := env["PIPELINE_TABLE_NAME"]; ok { // this module's function, without the marker it writes now
				return nil, &usageError{fmt.Sprintf("stack %s: template from an older version of kinesis-dynamo-pipeline: synthesize again with this version (event source mapping %s has no %s metadata)", st.name, id, markerKey)}
			}
			continue
		}
		if v, _ := marker["version"].(float64); v != markerVersion {
			return nil, &usageError{fmt.Sprintf("stack %s: event source mapping %s has %s version %v; this kdp reads version %d: run the kdp of the module version the app uses", st.name, id, markerKey, marker["version"], markerVersion)}
		}
		path, _ := marker["path"].(string)
		p, err := st.pipelineOf(id, r.Properties, fnID, fn, env, cleanPath(path))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (st *stackTemplate) pipelineOf(mappingID string, mapping map[string]any, fnID string, fn, env map[string]any, path string) (*pipeline, error) {
	p := &pipeline{mappingID: mappingID, mapping: mapping, functionID: fnID, function: fn, path: path}
	if p.path == "" { // the marker's path, else the path metadata, else the logical ID
		p.path = strings.TrimSuffix(st.paths[mappingID], "/EventSourceMapping")
	}
	if p.path == "" {
		p.path = mappingID
	}
	streamID, ok := refOf(mapping["EventSourceArn"])
	if !ok || st.resources[streamID].Type != "AWS::Kinesis::Stream" {
		return nil, &usageError{fmt.Sprintf("pipeline %s reads %s: kdp local recreates only streams the stack defines (imported streams are not supported)", p.path, importedHint(mapping["EventSourceArn"]))}
	}
	p.streamID = streamID
	sp := st.resources[streamID].Properties
	p.shards = 1
	if n, ok := sp["ShardCount"].(float64); ok && n >= 1 {
		p.shards = int32(n)
	}
	p.onDemand = dig(sp, "StreamModeDetails", "StreamMode") == "ON_DEMAND"
	p.encrypted = dig(sp, "StreamEncryption") != nil
	var err error
	if p.table, err = st.tableOf(p.path, "PIPELINE_TABLE_NAME", env["PIPELINE_TABLE_NAME"]); err != nil {
		return nil, err
	}
	if v, ok := env["PIPELINE_ERROR_TABLE_NAME"]; ok {
		t, err := st.tableOf(p.path, "PIPELINE_ERROR_TABLE_NAME", v)
		if err != nil {
			return nil, err
		}
		p.errorTable = &t
	}
	if v, ok := env["PIPELINE_AGGREGATE_TABLE_NAME"]; ok {
		t, err := st.tableOf(p.path, "PIPELINE_AGGREGATE_TABLE_NAME", v)
		if err != nil {
			return nil, err
		}
		p.aggTable = &t
	}
	if dest := dig(mapping, "DestinationConfig", "OnFailure", "Destination"); dest != nil {
		id, ok := refOf(dest)
		if !ok || st.resources[id].Type == "" {
			return nil, &usageError{fmt.Sprintf("pipeline %s sends failures to %s: kdp local recreates only destinations the stack defines", p.path, importedHint(dest))}
		}
		p.onFailureID, p.onFailureTyp = id, st.resources[id].Type
	}
	key, _ := dig(fn, "Code", "S3Key").(string)
	if key == "" {
		return nil, &usageError{fmt.Sprintf("pipeline %s: the function's code is not a file asset of the cloud assembly", p.path)}
	}
	p.assetDir = filepath.Join(st.dir, "asset."+strings.TrimSuffix(key, ".zip"))
	return p, nil
}

func (st *stackTemplate) tableOf(path, variable string, v any) (table, error) {
	id, ok := refOf(v)
	typ := st.resources[id].Type
	if !ok || (typ != "AWS::DynamoDB::Table" && typ != "AWS::DynamoDB::GlobalTable") {
		return table{}, &usageError{fmt.Sprintf("pipeline %s: %s is %s: kdp local recreates only tables the stack defines (imported tables are not supported)", path, variable, importedHint(v))}
	}
	props := st.resources[id].Properties
	types := map[string]string{}
	defs, _ := props["AttributeDefinitions"].([]any)
	for _, d := range defs {
		dm, _ := d.(map[string]any)
		name, _ := dm["AttributeName"].(string)
		t, _ := dm["AttributeType"].(string)
		types[name] = t
	}
	t := table{logicalID: id}
	schema, _ := props["KeySchema"].([]any)
	for _, k := range schema {
		km, _ := k.(map[string]any)
		name, _ := km["AttributeName"].(string)
		kt, _ := km["KeyType"].(string)
		t.keys = append(t.keys, keyAttr{name: name, typ: types[name], keyType: kt})
	}
	if len(t.keys) == 0 {
		return table{}, fmt.Errorf("pipeline %s: table %s has no key schema", path, id)
	}
	if ttl, ok := dig(props, "TimeToLiveSpecification", "AttributeName").(string); ok {
		t.ttl = ttl
	}
	return t, nil
}

// choose returns the pipeline at path ("" when the stack has exactly one).
func choose(stack string, ps []*pipeline, path string) (*pipeline, error) {
	if len(ps) == 0 {
		return nil, &usageError{fmt.Sprintf("no pipeline in stack %s (no event source mapping has the %s metadata kinesis-dynamo-pipeline writes)", stack, markerKey)}
	}
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.path)
	}
	if path == "" {
		if len(ps) == 1 {
			return ps[0], nil
		}
		return nil, &usageError{fmt.Sprintf("stack %s has %d pipelines; choose one with --pipeline: %s", stack, len(ps), strings.Join(paths, ", "))}
	}
	want := strings.Trim(path, "/")
	var found []*pipeline
	for _, p := range ps {
		if p.path == want {
			return p, nil
		}
		if strings.HasSuffix(p.path, "/"+want) { // the path without the stack (or the stage and the stack)
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, &usageError{fmt.Sprintf("no pipeline %s in stack %s; pipelines: %s", path, stack, strings.Join(paths, ", "))}
	}
	return nil, &usageError{fmt.Sprintf("--pipeline %s matches several pipelines of stack %s; give the whole path: %s", path, stack, strings.Join(paths, ", "))}
}

// dig returns the value at keys in nested maps, or nil.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
