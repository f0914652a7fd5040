package aggregate

import "context"

// Seen reports whether the ledger saw the record at position of shard delivered to the pipeline: it is marked
// (sent to the error table), in a give-up range the shard state holds, or in flight (pending to delivered). A
// record it did not see is one the pipeline counted, has not reached, or passed while none of its batch's attempts
// reached the ledger (unseen). kdp redrive --count-unseen asks it of an on-failure range's last and first
// records: seen, the given-up batch reached the ledger, so the range's unseen records are not of a batch the
// ledger missed.
func (s *Store) Seen(ctx context.Context, shard string, position []byte) (bool, error) {
	st := &shardStateRead{}
	st.state, st.err = s.ReadShardState(ctx, shard)
	rc, res := s.classify(ctx, st, []Contribution{{Shard: shard, Position: position}})
	if res.Err != nil {
		return false, res.Err
	}
	if rc == nil {
		return false, nil
	}
	switch rc.class {
	case RecountMarked, RecountGap, RecountInFlight:
		return true, nil
	}
	return false, nil
}
