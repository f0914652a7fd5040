package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Names shared by the construct and the processor. The construct sets these environment variables and writes the
// configuration file; the processor reads them at cold start.
const (
	// EnvTableName names the environment variable holding the data table's name (a deploy-time value).
	EnvTableName = "PIPELINE_TABLE_NAME"
	// EnvErrorTableName names the environment variable holding the error table's name. Empty or unset means the
	// pipeline has no error table: permanent failures are then reported for retry like transient ones.
	EnvErrorTableName = "PIPELINE_ERROR_TABLE_NAME"
	// EnvConfigFile names the environment variable that overrides where the configuration file is read from.
	EnvConfigFile = "PIPELINE_CONFIG_FILE"
	// ConfigFileName is the name of the static configuration file the construct writes next to `bootstrap`.
	ConfigFileName = "pipeline.json"
	// NoExprBuildTag is the build tag that leaves the expression and JSON Schema libraries out of the processor
	// (`go build -tags kdp_noexpr`), making `bootstrap` about 3 MB smaller. Such a processor rejects a configuration
	// for which Config.NeedsExpressions is true; everything else works as without the tag.
	NoExprBuildTag = "kdp_noexpr"
)

// AttributeType is a DynamoDB key attribute type.
type AttributeType string

// Key attribute types DynamoDB accepts.
const (
	AttributeTypeString AttributeType = "S"
	AttributeTypeNumber AttributeType = "N"
	AttributeTypeBinary AttributeType = "B"
)

// Key sources that take a key attribute's value from the record's metadata rather than from its payload.
// Any other source is a dot-separated path into the record's JSON object (for example "order.id").
const (
	SourceEventID        = "$eventId"        // "shardId:sequenceNumber" (plus "#<n>" for KPL user records, see Record.EventID), unique per record.
	SourceSequenceNumber = "$sequenceNumber" // the record's sequence number, as a string.
	SourcePartitionKey   = "$partitionKey"   // the producer's partition key.
	SourceShardID        = "$shardId"        // the shard the record came from.
	SourceArrivalTime    = "$arrivalTime"    // approximate arrival time: RFC 3339 for S, Unix milliseconds for N.
)

// KeyAttribute describes one key attribute of the data table and where its value comes from.
type KeyAttribute struct {
	// Name is the attribute name, as in the table's key schema.
	Name string `json:"name"`
	// Type is the attribute type, as in the table's key schema.
	Type AttributeType `json:"type"`
	// Source says where the value comes from: one of the Source* constants or a path into the JSON payload.
	// Empty means SourceEventID for the partition key and the payload field named like the attribute for a sort key.
	Source string `json:"source,omitempty"`
}

// Config is the processor's static configuration. The construct builds it from its props, validates it at synth time
// with Validate, and writes it as JSON into the function's asset as ConfigFileName; the processor reads and validates
// it again at cold start. Deploy-time values (table names) are not part of it: they travel in environment variables.
type Config struct {
	// PartitionKey is the data table's partition key. Default: "id" (S) from SourceEventID.
	PartitionKey KeyAttribute `json:"partitionKey"`
	// SortKey is the data table's sort key, if it has one. Default: none.
	SortKey *KeyAttribute `json:"sortKey,omitempty"`
	// ErrorTTLSeconds, when positive, makes error-table items expire this many seconds after they are written, through
	// the ErrorTTLAttribute attribute. Default: 0, error items never expire.
	ErrorTTLSeconds int64 `json:"errorTtlSeconds,omitempty"`
	// Transform, when set, configures the default transform declaratively: field selection, computed attributes, a
	// filter, a JSON Schema and a time to live (see TransformConfig). Default: nil, each record's JSON object is stored
	// as is, plus the key and metadata attributes.
	Transform *TransformConfig `json:"transform,omitempty"`
	// Metadata lists the metadata attributes the default transform writes on every item, by name: any of
	// AttrSequenceNumber, AttrPartitionKey, AttrArrivalTime and AttrProcessedAt (AllMetadata), each at most once. An
	// empty list writes none. Default: nil, DefaultMetadata() (AttrArrivalTime only: under the default event-id key
	// the key already names the shard and the sequence number). It is written even when empty ("metadata": []), so
	// that an empty list survives the configuration file.
	Metadata []string `json:"metadata"`
	// Aggregates lists windowed aggregates kept in the aggregate table (Options.AggregateTableName, from
	// EnvAggregateTableName), exactly once per stored record (see AggregateConfig and runtime/aggregate).
	// Default: none.
	Aggregates []AggregateConfig `json:"aggregates,omitempty"`
}

// TransformConfig is the declarative part of the default transform. For each record it runs, in this order:
//
//  1. Schema: the decoded payload must satisfy it, else the record goes to the error table with the schema errors.
//  2. Filter: a record for which it is false is skipped (counted, not written).
//  3. Include, Rename, Exclude: the payload's fields become the item's attributes.
//  4. Computed: each expression's value becomes an attribute, in order.
//  5. The key attributes (read from the original payload or the record's metadata, never from renamed or computed
//     attributes), the metadata attributes Config.Metadata lists, and the TTL attribute.
//
// Paths are dot-separated field names into nested JSON objects ("order.customer.id"); they cannot address array
// elements or fields whose names contain a dot. Expressions use github.com/expr-lang/expr; see the package
// documentation for what they see. Everything is compiled once, by Validate and when the transform is built.
//
// Schema, Filter and Computed need the expression and JSON Schema libraries, which a processor built with
// -tags kdp_noexpr (NoExprBuildTag) leaves out: there, Validate reports each of them as a problem.
type TransformConfig struct {
	// Include keeps only these payload paths (with nested paths, only those parts of the objects). Rename sources
	// are kept too. Default: every field.
	Include []string `json:"include,omitempty"`
	// Exclude drops these payload paths, after Include and Rename. Default: none.
	Exclude []string `json:"exclude,omitempty"`
	// Rename moves the value at a payload path (the key) to a top-level attribute (the value). A missing source
	// gives no attribute; a target replaces a payload attribute of the same name. Default: none.
	Rename map[string]string `json:"rename,omitempty"`
	// Computed adds attributes from expressions, evaluated in order after Include, Rename and Exclude; later
	// expressions see earlier results as variables. A computed attribute replaces a payload attribute of the same
	// name. Default: none.
	Computed []ComputedAttribute `json:"computed,omitempty"`
	// Filter is a boolean expression: records for which it is false are skipped (counted, not written). It sees the
	// payload and the record, not computed attributes. Default: "", every record is kept.
	Filter string `json:"filter,omitempty"`
	// Schema is a JSON Schema (draft 2020-12 unless its "$schema" says otherwise; "format" is asserted) the decoded
	// payload must satisfy; other records go to the error table with the schema errors as the reason. It must be
	// self-contained: references to other documents are rejected. Default: none.
	Schema json.RawMessage `json:"schema,omitempty"`
	// TTL sets an expiry attribute on every item. Default: none.
	TTL *TTLConfig `json:"ttl,omitempty"`
}

// ComputedAttribute is an attribute whose value an expression computes.
type ComputedAttribute struct {
	// Name is the attribute's name.
	Name string `json:"name"`
	// Expression computes the value (see the package documentation for the environment and the type mapping).
	Expression string `json:"expression"`
}

// TTLConfig makes items expire: Attribute (N, Unix seconds) is set to the record's arrival time plus Seconds.
// DynamoDB's time to live must be enabled on the table for that attribute.
type TTLConfig struct {
	// Attribute is the TTL attribute's name.
	Attribute string `json:"attribute"`
	// Seconds is how long after its arrival an item expires: at least 1, at most MaxTTLSeconds.
	Seconds int64 `json:"seconds"`
}

// Attribute names the processor writes. The metadata attributes Config.Metadata lists (by default only
// AttrArrivalTime) are added to every item of the default transform; error attributes make up the error table's
// items.
const (
	// ErrorTablePartitionKey is the error table's partition key (S): the failed record's event id, plus
	// "#<n>" for the n-th user record of a de-aggregated record.
	ErrorTablePartitionKey = "id"
	// ErrorTTLAttribute is the error table's time-to-live attribute (N, Unix seconds).
	ErrorTTLAttribute = "expiresAt"
)

// DefaultConfig returns the configuration used when none is given: partition key "id" (S) holding the event id.
func DefaultConfig() Config {
	return Config{PartitionKey: KeyAttribute{Name: "id", Type: AttributeTypeString, Source: SourceEventID}}
}

// WithDefaults returns a copy of c with empty fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.PartitionKey.Name == "" {
		c.PartitionKey.Name = "id"
	}
	if c.PartitionKey.Type == "" {
		c.PartitionKey.Type = AttributeTypeString
	}
	if c.PartitionKey.Source == "" {
		c.PartitionKey.Source = SourceEventID
	}
	if c.SortKey != nil {
		sk := *c.SortKey
		if sk.Type == "" {
			sk.Type = AttributeTypeString
		}
		if sk.Source == "" {
			sk.Source = sk.Name
		}
		c.SortKey = &sk
	}
	if c.Metadata == nil {
		c.Metadata = DefaultMetadata()
	}
	return c
}

// KeyNames returns the data table's key attribute names under c (after WithDefaults): the partition key's, then
// the sort key's if c has one.
func (c Config) KeyNames() []string {
	c = c.WithDefaults()
	names := []string{c.PartitionKey.Name}
	if c.SortKey != nil {
		names = append(names, c.SortKey.Name)
	}
	return names
}

// Validate reports every problem with c (after WithDefaults) joined into one error, or nil. The construct runs it at
// synth time and the processor at cold start, so both agree on what is valid. Each problem is one line starting with
// what it is about: "partition key:", "sort key:", "error TTL:", "metadata[0]:", or for the transform "transform.include[0]:",
// "transform.exclude[0]:", "transform.rename[<source>]:", "transform.computed[0] (<name>):", "transform.filter:",
// "transform.schema:", "transform.ttl:". Expression problems quote the expression and the compiler's message.
// Built with -tags kdp_noexpr (NoExprBuildTag), it reports every computed attribute, the filter and the schema as a
// problem ("transform.filter: this processor was built with -tags kdp_noexpr, ..."): that processor cannot run them.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, c.PartitionKey.validate("partition key")...)
	if c.SortKey != nil {
		errs = append(errs, c.SortKey.validate("sort key")...)
		if c.SortKey.Name != "" && c.SortKey.Name == c.PartitionKey.Name {
			errs = append(errs, fmt.Errorf("sort key: name %q is also the partition key's name", c.SortKey.Name))
		}
	}
	if c.ErrorTTLSeconds < 0 {
		errs = append(errs, fmt.Errorf("error TTL: %d seconds is negative", c.ErrorTTLSeconds))
	}
	_, merrs := compileMetadata(c.Metadata)
	errs = append(errs, merrs...)
	if c.Transform != nil {
		_, terrs := compileTransform(c)
		errs = append(errs, terrs...)
	}
	_, aerrs := compileAggregates(c.Aggregates)
	errs = append(errs, aerrs...)
	return errors.Join(errs...)
}

// NeedsExpressions reports whether c's Transform has computed attributes, a filter or a schema: the parts that need
// the expression and JSON Schema libraries. When it is false, the processor can be built with -tags kdp_noexpr
// (NoExprBuildTag), which leaves both libraries out of `bootstrap`; a processor built that way rejects a
// configuration for which it is true.
func (c Config) NeedsExpressions() bool {
	t := c.Transform
	return t != nil && (len(t.Computed) > 0 || t.Filter != "" || t.hasSchema()) || aggregatesUseExpressions(c.Aggregates)
}

// hasSchema reports whether t sets a schema (JSON null counts as none).
func (t *TransformConfig) hasSchema() bool {
	return len(t.Schema) > 0 && string(t.Schema) != "null"
}

func (k KeyAttribute) validate(what string) []error {
	var errs []error
	switch {
	case k.Name == "":
		errs = append(errs, fmt.Errorf("%s: name is empty", what))
	case k.Name == AttrPosition:
		errs = append(errs, fmt.Errorf("%s: name %s is reserved (the processor's position attribute)", what, AttrPosition))
	case len(k.Name) > maxKeyNameBytes:
		errs = append(errs, fmt.Errorf("%s: name is %d bytes, more than DynamoDB's %d for a key attribute", what, len(k.Name), maxKeyNameBytes))
	case !utf8.ValidString(k.Name):
		errs = append(errs, fmt.Errorf("%s: name is not valid UTF-8", what))
	}
	switch k.Type {
	case AttributeTypeString, AttributeTypeNumber, AttributeTypeBinary:
	default:
		errs = append(errs, fmt.Errorf("%s: type %q is not S, N or B", what, k.Type))
	}
	switch k.Source {
	case SourceEventID, SourceSequenceNumber, SourcePartitionKey, SourceShardID:
		if k.Type != AttributeTypeString {
			errs = append(errs, fmt.Errorf("%s: source %s gives a string, but the attribute's type is %s", what, k.Source, k.Type))
		}
	case SourceArrivalTime:
		if k.Type == AttributeTypeBinary {
			errs = append(errs, fmt.Errorf("%s: source %s gives a string or a number, not binary", what, k.Source))
		}
	case "":
		errs = append(errs, fmt.Errorf("%s: source is empty", what))
	default:
		if strings.HasPrefix(k.Source, "$") {
			errs = append(errs, fmt.Errorf("%s: unknown metadata source %q (want %s, %s, %s, %s or %s)", what, k.Source,
				SourceEventID, SourceSequenceNumber, SourcePartitionKey, SourceShardID, SourceArrivalTime))
		} else if err := validatePath(k.Source); err != nil {
			errs = append(errs, fmt.Errorf("%s: source %w", what, err))
		}
	}
	return errs
}

func validatePath(p string) error {
	for _, seg := range strings.Split(p, ".") {
		if seg == "" {
			return fmt.Errorf("path %q has an empty segment", p)
		}
	}
	return nil
}

// ParseConfig decodes a configuration file's content, fills in defaults and validates it.
// Unknown fields are rejected, so a construct newer than the processor fails loudly at cold start.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	// Only white space may follow: a second object would be ignored, fields and all (an omitMetadata, say).
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("decode config: content after the configuration object")
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
	}
	return c, nil
}

// Marshal encodes c as the content of the configuration file, with stable output for stable asset hashes.
func (c Config) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return append(b, '\n'), nil
}

// LoadConfig reads the configuration file. The path is $PIPELINE_CONFIG_FILE if set, else ConfigFileName in
// $LAMBDA_TASK_ROOT, else next to the running executable. A missing file (at the default location only) gives
// DefaultConfig.
func LoadConfig() (Config, error) {
	path, explicit := os.Getenv(EnvConfigFile), true
	if path == "" {
		explicit = false
		dir := os.Getenv("LAMBDA_TASK_ROOT")
		if dir == "" {
			exe, err := os.Executable()
			if err != nil {
				return Config{}, fmt.Errorf("locate config: %w", err)
			}
			dir = filepath.Dir(exe)
		}
		path = filepath.Join(dir, ConfigFileName)
	}
	c, err := ReadConfigFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return DefaultConfig(), nil
	}
	return c, err
}

// ReadConfigFile reads, parses and validates the configuration file at path (see ParseConfig). A missing file is
// an error that wraps os.ErrNotExist.
func ReadConfigFile(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
