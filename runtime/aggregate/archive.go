package aggregate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"
)

// The archive of an aggregate item's set (see the package documentation, Layout and Exactly once): when adding
// positions would take an item's AttrSet past MaxRecountedPositions, its lowest positions move to archive buckets
// (ledger items, one per item and bucket), and the item's AttrArchive rises to the highest position moved.
const (
	// AttrArchive is an aggregate item's archive watermark (B): every position counted into the item out of fence
	// order and no longer in its AttrSet is at or below it, in its archive bucket. Absent when nothing was moved.
	AttrArchive = "_karch"
	// ArchivePrefix starts the partition key of an archive bucket: ArchivePrefix + hex of the SHA-256 of the
	// aggregate item's partition key (which may be as long as DynamoDB allows a key); the sort key is the item's
	// shard id, '#', and the bucket's number in two hex digits (ArchiveBuckets of them, by the first byte of the
	// SHA-256 of the position).
	ArchivePrefix = "_kset#"
	// AttrArchiveItem is an archive bucket's aggregate item partition key (S), checked on every read.
	AttrArchiveItem = "item"
	// ArchiveBuckets is the number of archive buckets of an aggregate item.
	ArchiveBuckets = 256
)

// ArchiveKey returns the key of the archive bucket of the aggregate item (itemKey, shard) holding position.
func ArchiveKey(itemKey, shard string, position []byte) map[string]types.AttributeValue {
	return archiveKey(itemKey, shard, bucketOf(position, ArchiveBuckets))
}

func archiveKey(itemKey, shard string, bucket int) map[string]types.AttributeValue {
	h := sha256.Sum256([]byte(itemKey))
	return map[string]types.AttributeValue{
		AttrPartitionKey: &types.AttributeValueMemberS{Value: ArchivePrefix + hex.EncodeToString(h[:])},
		AttrSortKey:      &types.AttributeValueMemberS{Value: fmt.Sprintf("%s#%02x", shard, bucket)},
	}
}

// bucketOf returns position's bucket among n.
func bucketOf(position []byte, n int) int {
	h := sha256.Sum256(position)
	return int(h[0]) % n
}

// archiveBuckets returns the number of buckets (s.buckets in tests, ArchiveBuckets otherwise).
func (s *Store) archiveBuckets() int {
	return orDefault(s.buckets, ArchiveBuckets)
}

// maxSet returns the most positions a write leaves in an item's AttrSet when it can archive (s.setCap in tests).
func (s *Store) maxSet() int {
	return orDefault(s.setCap, MaxRecountedPositions)
}

// maxBucket returns the most positions an archive bucket holds (s.bucketCap in tests).
func (s *Store) maxBucket() int {
	return orDefault(s.bucketCap, MaxRecountedPositions)
}

// inFlight returns how many buckets are read or written at once (MaxInFlight, default 8).
func (s *Store) inFlight() int {
	return orDefault(s.MaxInFlight, 8)
}

// bucket is an archive bucket as read.
type bucket struct {
	members map[string]bool
	list    [][]byte
	version int64 // 0: no item
}

// readBucket reads bucket b of the item (strongly consistent).
func (s *Store) readBucket(ctx context.Context, itemKey, shard string, b int) (bucket, error) {
	it, err := s.getItem(ctx, archiveKey(itemKey, shard, b))
	if err != nil {
		return bucket{}, fmt.Errorf("read archive bucket %02x: %w", b, err)
	}
	out := bucket{members: map[string]bool{}}
	if len(it) == 0 {
		return out, nil
	}
	if owner, ok := it[AttrArchiveItem].(*types.AttributeValueMemberS); !ok || owner.Value != itemKey {
		return out, fmt.Errorf("archive bucket %02x belongs to another item", b)
	}
	v, ok := it[AttrVersion].(*types.AttributeValueMemberN)
	if !ok {
		return out, fmt.Errorf("archive bucket %02x: no %s", b, AttrVersion)
	}
	if out.version, err = strconv.ParseInt(v.Value, 10, 64); err != nil || out.version < 1 {
		return out, fmt.Errorf("archive bucket %02x: %s %q is not a positive integer", b, AttrVersion, v.Value)
	}
	if set, ok := it[AttrSet]; ok {
		bs, isBS := set.(*types.AttributeValueMemberBS)
		if !isBS {
			return out, fmt.Errorf("archive bucket %02x: %s is not a binary set", b, AttrSet)
		}
		for _, p := range bs.Value {
			out.members[string(p)] = true
			out.list = append(out.list, p)
		}
	}
	return out, nil
}

// archived reads the buckets of positions (after the item was read: a watermark seen there was raised after its
// positions reached their buckets) and returns which of positions they hold.
func (s *Store) archived(ctx context.Context, itemKey, shard string, positions [][]byte) (map[string]bool, error) {
	n := s.archiveBuckets()
	byBucket := map[int][][]byte{}
	for _, p := range positions {
		b := bucketOf(p, n)
		byBucket[b] = append(byBucket[b], p)
	}
	out := map[string]bool{}
	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(s.inFlight())
	for b, ps := range byBucket {
		g.Go(func() error {
			bk, err := s.readBucket(ctx, itemKey, shard, b)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, p := range ps {
				if bk.members[string(p)] {
					out[string(p)] = true
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// archive adds positions (members of the item's AttrSet as read: counted positions) to their buckets, each bucket
// read, united and written conditionally on its version (re-read on a conflict; idempotent), and returns the
// positions now archived: all but those whose bucket is full (maxBucket).
func (s *Store) archive(ctx context.Context, itemKey, shard string, positions [][]byte) ([][]byte, error) {
	n := s.archiveBuckets()
	byBucket := map[int][][]byte{}
	var order []int
	for _, p := range positions {
		b := bucketOf(p, n)
		if _, ok := byBucket[b]; !ok {
			order = append(order, b)
		}
		byBucket[b] = append(byBucket[b], p)
	}
	moved := make([][][]byte, len(order))
	var g errgroup.Group
	g.SetLimit(s.inFlight())
	for i, b := range order {
		g.Go(func() error {
			var err error
			moved[i], err = s.archiveBucket(ctx, itemKey, shard, b, byBucket[b])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out [][]byte
	for _, ps := range moved {
		out = append(out, ps...)
	}
	return sortedPositions(out), nil
}

// archiveBucket adds ps to bucket b (as many as fit, lowest first) and returns those in it.
func (s *Store) archiveBucket(ctx context.Context, itemKey, shard string, b int, ps [][]byte) ([][]byte, error) {
	ps = sortedPositions(ps)
	for conflicts := 0; ; conflicts++ {
		bk, err := s.readBucket(ctx, itemKey, shard, b)
		if err != nil {
			return nil, err
		}
		var in, fresh [][]byte
		room := s.maxBucket() - len(bk.list)
		for _, p := range ps {
			switch {
			case bk.members[string(p)]:
				in = append(in, p)
			case room > 0:
				in, fresh = append(in, p), append(fresh, p)
				room--
			}
		}
		if len(fresh) == 0 {
			return in, nil
		}
		item := archiveKey(itemKey, shard, b)
		item[AttrArchiveItem] = &types.AttributeValueMemberS{Value: itemKey}
		item[AttrSet] = &types.AttributeValueMemberBS{Value: sortedPositions(append(append([][]byte(nil), bk.list...), fresh...))}
		item[AttrVersion] = &types.AttributeValueMemberN{Value: strconv.FormatInt(bk.version+1, 10)}
		put := &dynamodb.PutItemInput{Item: item}
		versionCondition(put, bk.version > 0, bk.version, nil)
		err = s.putItem(ctx, put)
		if err == nil {
			return in, nil
		}
		if !errors.Is(err, errStateChanged) || conflicts+1 >= maxConflicts {
			return nil, fmt.Errorf("write archive bucket %02x: %w", b, err)
		}
	}
}

// toArchive returns the positions of set (sorted) to move so that set, less them, plus adding more positions holds
// at most half of limit: the lowest, all of set at most; none when set plus adding fit in limit.
func toArchive(set [][]byte, adding, limit int) [][]byte {
	if len(set)+adding <= limit {
		return nil
	}
	n := min(len(set), len(set)+adding-limit/2)
	return sortedPositions(set)[:n]
}

// without returns set less the positions of drop.
func without(set [][]byte, drop [][]byte) [][]byte {
	d := positionSet(drop)
	var out [][]byte
	for _, p := range set {
		if !d[string(p)] {
			out = append(out, p)
		}
	}
	return out
}

// highest returns the highest of ps (nil when empty).
func highest(ps [][]byte) []byte {
	var h []byte
	for _, p := range ps {
		if h == nil || bytes.Compare(p, h) > 0 {
			h = p
		}
	}
	return h
}

// orDefault returns v when it is set (above 0), else d.
func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}
