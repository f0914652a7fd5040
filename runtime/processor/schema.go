//go:build !kdp_noexpr

package processor

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaPrinter formats schema errors (the schema library's messages are localized).
var schemaPrinter = message.NewPrinter(language.English)

// maxSchemaErrors bounds the schema errors quoted in an error item's reason.
const maxSchemaErrors = 10

// schemaURL names the configured schema inside the compiler; it appears in no message the user sees.
const schemaURL = "pipeline:///transform.schema.json"

// noRemoteLoader refuses every reference to another document: the processor must not fetch anything at run time,
// and a file found at synth time would be missing in Lambda.
type noRemoteLoader struct{}

// Load refuses every remote document: schemas must be self-contained.
func (noRemoteLoader) Load(url string) (any, error) {
	return nil, errors.New("the schema must be self-contained: references to other documents are not supported")
}

// compileSchema compiles a JSON Schema: draft 2020-12 unless its $schema says otherwise, format assertions on.
func compileSchema(raw []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %s", flatten(err.Error()))
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, errors.New("must be a JSON object or boolean")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noRemoteLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, errors.New(flatten(err.Error()))
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		var le *jsonschema.LoadURLError
		switch {
		case errors.As(err, &sve) && errors.As(sve.Err, &ve):
			return nil, errors.New("not a valid schema: " + validationLeaves(ve))
		case errors.As(err, &le):
			return nil, fmt.Errorf("reference %q: %s", le.URL, flatten(le.Err.Error()))
		}
		return nil, errors.New(strings.ReplaceAll(flatten(err.Error()), schemaURL, "schema"))
	}
	return sch, nil
}

// schemaReason formats a validation failure on one line.
func schemaReason(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "schema: " + flatten(err.Error())
	}
	return "does not match the schema: " + validationLeaves(ve)
}

// schemaFailure is the permanent failure of a payload that does not match the schema: in full (schemaReason, whose
// messages may quote the payload's values) for the error table; for logs, each failing location (a JSON pointer) with
// the keyword it breaks ("pattern", "type"), never a value.
func schemaFailure(err error) error {
	full := schemaReason(err)
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return Permanent(reason("does not match the schema", full))
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, fmt.Sprintf("at '%s': %s", jsonPointer(e.InstanceLocation), strings.Join(e.ErrorKind.KeywordPath(), "/")))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(leaves)
	more := ""
	if len(leaves) > maxSchemaErrors {
		more = fmt.Sprintf("; and %d more", len(leaves)-maxSchemaErrors)
		leaves = leaves[:maxSchemaErrors]
	}
	return Permanent(reason("does not match the schema: "+strings.Join(leaves, "; ")+more, full))
}

// validationLeaves lists the failing leaves of a validation error as "at '<instance pointer>': <message>", sorted,
// joined with "; ", at most maxSchemaErrors of them.
func validationLeaves(ve *jsonschema.ValidationError) string {
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, fmt.Sprintf("at '%s': %s", jsonPointer(e.InstanceLocation), flatten(e.ErrorKind.LocalizedString(schemaPrinter))))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(leaves) // the validator visits properties in map order
	more := ""
	if len(leaves) > maxSchemaErrors {
		more = fmt.Sprintf("; and %d more", len(leaves)-maxSchemaErrors)
		leaves = leaves[:maxSchemaErrors]
	}
	return strings.Join(leaves, "; ") + more
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}
