package processor

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// MaxTTLSeconds is the longest time to live TransformConfig.TTL accepts: 100 years.
const MaxTTLSeconds = 36525 * 24 * 3600 // 100 years of 365.25 days

// declarative is a compiled TransformConfig. The expression and schema parts (exprParts, compileExprParts and the
// transform method) live in declarative_expr.go, or in declarative_noexpr.go when built with -tags kdp_noexpr.
type declarative struct {
	keys    []KeyAttribute
	include [][]string // paths to keep (rename sources added, nested duplicates removed); nil keeps every field
	exclude [][]string
	renames []renameOp // sorted by source path
	ttl     *TTLConfig
	meta    metaSet // the metadata attributes to write (Config.Metadata)

	exprParts // computed attributes, filter and schema
}

type renameOp struct {
	src  []string
	dst  string
	path string
}

// compileTransform compiles c.Transform (c after WithDefaults), returning every problem, each one line prefixed with
// the option it is about.
func compileTransform(c Config) (*declarative, []error) {
	t := c.Transform
	if t == nil {
		t = &TransformConfig{}
	}
	d := &declarative{keys: []KeyAttribute{c.PartitionKey}, ttl: t.TTL}
	if c.Metadata == nil {
		c.Metadata = DefaultMetadata()
	}
	d.meta, _ = compileMetadata(c.Metadata) // its problems are Validate's: reported once, as "metadata[i]:"
	if c.SortKey != nil {
		d.keys = append(d.keys, *c.SortKey)
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// owners says which attribute, if any, already owns a name: a collision would silently lose data.
	owners := map[string]string{}
	for i, k := range d.keys {
		if k.Name != "" {
			owners[k.Name] = [...]string{"the partition key", "the sort key"}[i]
		}
	}
	owners[AttrPosition] = "the reserved position attribute (the processor's, see AttrPosition)"
	for _, m := range d.meta.names() {
		if _, ok := owners[m]; !ok {
			owners[m] = "a metadata attribute written on every item (see metadata)"
		}
	}
	claim := func(prefix, name, as string) {
		if owner, ok := owners[name]; ok {
			fail("%s: attribute %q is also %s", prefix, name, owner)
			return
		}
		owners[name] = as
	}

	// TTL.
	if t.TTL != nil {
		if t.TTL.Attribute == "" {
			fail("transform.ttl: attribute is empty")
		} else {
			claim("transform.ttl", t.TTL.Attribute, "the TTL attribute (transform.ttl)")
		}
		if t.TTL.Seconds < 1 || t.TTL.Seconds > MaxTTLSeconds {
			fail("transform.ttl: seconds %d must be between 1 and %d (100 years)", t.TTL.Seconds, int64(MaxTTLSeconds))
		}
	}

	// Include.
	var include []string
	seen := map[string]string{}
	for i, p := range t.Include {
		prefix := fmt.Sprintf("transform.include[%d]", i)
		if err := validatePath(p); err != nil {
			fail("%s: %v", prefix, err)
			continue
		}
		if other, ok := seen[p]; ok {
			fail("%s: path %q is also %s", prefix, p, other)
			continue
		}
		seen[p] = prefix
		include = append(include, p)
	}

	// Rename.
	srcs := make([]string, 0, len(t.Rename))
	for src := range t.Rename {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for i, src := range srcs {
		prefix := fmt.Sprintf("transform.rename[%s]", src)
		dst := t.Rename[src]
		if err := validatePath(src); err != nil {
			fail("%s: source %v", prefix, err)
			continue
		}
		for _, other := range srcs[:i] {
			if within(src, other) || within(other, src) {
				fail("%s: source %q overlaps the source of transform.rename[%s]", prefix, src, other)
			}
		}
		if dst == "" {
			fail("%s: target attribute name is empty", prefix)
			continue
		}
		claim(prefix, dst, "the target of "+prefix)
		d.renames = append(d.renames, renameOp{src: strings.Split(src, "."), dst: dst, path: src})
	}
	if len(include) > 0 {
		d.include = minimalPaths(append(include, srcs...))
	}

	// Exclude.
	for i, p := range t.Exclude {
		prefix := fmt.Sprintf("transform.exclude[%d]", i)
		if err := validatePath(p); err != nil {
			fail("%s: %v", prefix, err)
			continue
		}
		for j, in := range t.Include {
			if within(in, p) {
				fail("%s: path %q excludes what transform.include[%d] (%q) keeps", prefix, p, j, in)
			}
		}
		for _, src := range srcs {
			if within(p, src) {
				fail("%s: path %q is inside transform.rename[%s], which moves it (rename happens first)", prefix, p, src)
			}
		}
		d.exclude = append(d.exclude, strings.Split(p, "."))
	}

	// Computed attributes, filter, schema.
	d.compileExprParts(t, claim, fail)
	return d, errs
}

// within reports whether path p is path q or inside it.
func within(p, q string) bool {
	return p == q || strings.HasPrefix(p, q) && p[len(q)] == '.'
}

// minimalPaths splits paths into segments, dropping those inside another one.
func minimalPaths(paths []string) [][]string {
	sort.Strings(paths)
	var out [][]string
	var last string
	for _, p := range paths {
		if len(out) > 0 && within(p, last) {
			continue
		}
		last = p
		out = append(out, strings.Split(p, "."))
	}
	return out
}

// newDeclarativeTransform returns the default transform applying cfg.Transform, or the error Validate reports.
func newDeclarativeTransform(cfg Config) (Transform, error) {
	d, errs := compileTransform(cfg)
	if _, merrs := compileMetadata(cfg.Metadata); len(merrs) > 0 {
		errs = append(merrs, errs...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d.transform, nil
}

// finish adds the key attributes, the metadata attributes and the TTL attribute to item, the record's payload
// attributes, and returns it as the transform's result.
func (d *declarative) finish(ctx context.Context, r *Record, item Item) ([]Item, error) {
	if _, ok := r.Data[AttrPosition]; ok {
		return nil, Permanent(errReservedPayload)
	}
	// Metadata first, then the keys: a key named like a listed metadata attribute owns the name (see compileTransform).
	addMetadata(ctx, item, r, d.meta)
	for _, k := range d.keys {
		av, err := keyValue(k, r)
		if err != nil {
			return nil, Permanent(err)
		}
		item[k.Name] = av
	}
	if d.ttl != nil {
		base := r.ArrivalTime
		if base.IsZero() {
			base = ProcessedAt(ctx)
		}
		item[d.ttl.Attribute] = &types.AttributeValueMemberN{Value: strconv.FormatInt(base.Unix()+d.ttl.Seconds, 10)}
	}
	return []Item{item}, nil
}

// fields builds the item's payload attributes: Include, then Rename, then Exclude. The record's data is not
// modified: nested maps of the item are fresh copies.
func (d *declarative) fields(data map[string]any, extra int) (Item, error) {
	var item Item
	if d.include == nil {
		item = make(Item, len(data)+extra)
		for k, v := range data {
			av, err := ToAttributeValue(v)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", k, err)
			}
			item[k] = av
		}
	} else {
		item = make(Item, len(d.include)+extra)
		for _, p := range d.include {
			v, ok := lookupPath(data, p)
			if !ok {
				continue
			}
			av, err := ToAttributeValue(v)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", strings.Join(p, "."), err)
			}
			placePath(item, p, av)
		}
	}
	if len(d.renames) > 0 {
		moved := make([]types.AttributeValue, len(d.renames))
		for i, rn := range d.renames {
			moved[i] = takePath(item, rn.src)
		}
		for i, rn := range d.renames {
			if moved[i] != nil {
				item[rn.dst] = moved[i]
			}
		}
	}
	for _, p := range d.exclude {
		takePath(item, p)
	}
	return item, nil
}

// lookupPath returns the value at path p of a decoded JSON object.
func lookupPath(data map[string]any, p []string) (any, bool) {
	var v any = data
	for _, seg := range p {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// placePath sets the attribute at path p, creating the maps on the way (a non-map on the way is replaced).
func placePath(item Item, p []string, av types.AttributeValue) {
	m := item
	for _, seg := range p[:len(p)-1] {
		sub, ok := m[seg].(*types.AttributeValueMemberM)
		if !ok {
			sub = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}
			m[seg] = sub
		}
		m = sub.Value
	}
	m[p[len(p)-1]] = av
}

// takePath removes the attribute at path p and returns it (nil if there is none).
func takePath(item Item, p []string) types.AttributeValue {
	m := item
	for _, seg := range p[:len(p)-1] {
		sub, ok := m[seg].(*types.AttributeValueMemberM)
		if !ok {
			return nil
		}
		m = sub.Value
	}
	av, ok := m[p[len(p)-1]]
	if !ok {
		return nil
	}
	delete(m, p[len(p)-1])
	return av
}
