package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// readFromLeader makes k read keys through the stream leader. A KV bucket
// allows direct gets, which any replica may answer, including one that
// has not applied the latest acknowledged write yet: a capsule that
// increments a counter through one node and reads it through another
// could read the old value. The leader applied every write it
// acknowledged. The bucket's own configuration is left alone (nodes that
// open it concurrently would otherwise flip it); only this handle's view
// of the stream says "no direct gets".
func (k *KV) readFromLeader(ctx context.Context, js jetstream.JetStream, bucket string) error {
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		return err
	}
	// s is this handle's own copy of the stream info, not yet shared.
	s.CachedInfo().Config.AllowDirect = false
	k.leader, k.subj = s, "$KV."+bucket+"."
	return nil
}

// get reads the latest entry of bucket key sk, from the stream leader
// when the bucket is replicated. A missing or deleted key is
// jetstream.ErrKeyNotFound.
func (k *KV) get(ctx context.Context, sk string) (jetstream.KeyValueEntry, error) {
	if k.leader == nil {
		return k.kv.Get(ctx, sk)
	}
	m, err := k.leader.GetLastMsgForSubject(ctx, k.subj+sk)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, jetstream.ErrKeyNotFound
		}
		return nil, err
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" || m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		return nil, jetstream.ErrKeyNotFound
	}
	return &leaderEntry{bucket: k.kv.Bucket(), key: sk, m: m}, nil
}

// leaderEntry is a KV entry read from the stream leader.
type leaderEntry struct {
	bucket, key string
	m           *jetstream.RawStreamMsg
}

func (e *leaderEntry) Bucket() string                  { return e.bucket }
func (e *leaderEntry) Key() string                     { return e.key }
func (e *leaderEntry) Value() []byte                   { return e.m.Data }
func (e *leaderEntry) Revision() uint64                { return e.m.Sequence }
func (e *leaderEntry) Created() time.Time              { return e.m.Time }
func (e *leaderEntry) Delta() uint64                   { return 0 }
func (e *leaderEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }
