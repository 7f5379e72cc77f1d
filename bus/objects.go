package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrObjectNotFound is returned by ObjectStore.Get for a missing object and
// by OpenObjectStore for a missing bucket.
var ErrObjectNotFound = errors.New("bus: object not found")

// ObjectStore is a JetStream object store bucket (large blobs, chunked;
// `nats object ls BUCKET` lists it).
//
// # Concurrency
//
// Goroutine-safe.
type ObjectStore struct {
	bucket string
	obs    jetstream.ObjectStore
}

// ObjectStoreConfig configures OpenObjectStore.
type ObjectStoreConfig struct {
	// Bucket is the bucket name.
	Bucket string
	// Create makes the bucket if it does not exist (with Replicas
	// replicas, 1 when zero); otherwise a missing bucket is
	// ErrObjectNotFound.
	Create   bool
	Replicas int
	// Description is shown by `nats object info` (Create only).
	Description string
}

// OpenObjectStore opens (or creates) an object store bucket on c.
func OpenObjectStore(ctx context.Context, c *Conn, cfg ObjectStoreConfig) (*ObjectStore, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var (
		obs jetstream.ObjectStore
		err error
	)
	if cfg.Create {
		obs, err = c.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: cfg.Bucket, Replicas: max(cfg.Replicas, 1), Description: cfg.Description,
		})
	} else {
		obs, err = c.js.ObjectStore(ctx, cfg.Bucket)
	}
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: bucket %s", ErrObjectNotFound, cfg.Bucket)
	case err != nil:
		return nil, fmt.Errorf("bus: object store %s: %w", cfg.Bucket, err)
	}
	return &ObjectStore{bucket: cfg.Bucket, obs: obs}, nil
}

// Put stores data under name, replacing any previous object of that name,
// and returns the object's digest ("SHA-256=<base64url>").
func (o *ObjectStore) Put(ctx context.Context, name string, data []byte, description string) (string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := o.obs.PutBytes(ctx, name, data)
	if err != nil {
		return "", fmt.Errorf("bus: object %s/%s: put: %w", o.bucket, name, err)
	}
	if description != "" {
		meta := info.ObjectMeta
		meta.Description = description
		if err := o.obs.UpdateMeta(ctx, name, meta); err != nil {
			return "", fmt.Errorf("bus: object %s/%s: meta: %w", o.bucket, name, err)
		}
	}
	return info.Digest, nil
}

// Get returns the object stored under name; the store checks its digest
// while reading it.
func (o *ObjectStore) Get(ctx context.Context, name string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	b, err := o.obs.GetBytes(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("%w: %s/%s", ErrObjectNotFound, o.bucket, name)
	case err != nil:
		return nil, fmt.Errorf("bus: object %s/%s: get: %w", o.bucket, name, err)
	}
	return b, nil
}
