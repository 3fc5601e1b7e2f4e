package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ctibridge/ctibridge/secret"
)

// Key is one API key as configured: a name for the audit log and the SHA-256
// of the key. The key itself is never stored.
type Key struct {
	Name   string `yaml:"name"`
	SHA256 string `yaml:"sha256"`
}

// Keys checks bearer keys in constant time. Several keys may be valid at once,
// so a key can be rotated without downtime.
type Keys struct {
	names   []string
	digests [][sha256.Size]byte
}

// NewKeys builds a key set from hashed keys and plain keys (the latter from
// CTIBRIDGE_API_KEYS, named env-1, env-2, ...).
func NewKeys(hashed []Key, plain []secret.Secret) (*Keys, error) {
	k := &Keys{}
	for i, h := range hashed {
		raw, err := hex.DecodeString(strings.TrimPrefix(h.SHA256, "sha256:"))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("apiKeys[%d] (%s): sha256 must be 64 hex characters", i, h.Name)
		}
		if h.Name == "" {
			return nil, fmt.Errorf("apiKeys[%d]: name is empty", i)
		}
		k.names = append(k.names, h.Name)
		k.digests = append(k.digests, [sha256.Size]byte(raw))
	}
	for i, p := range plain {
		if len(p.Reveal()) < 16 {
			return nil, fmt.Errorf("CTIBRIDGE_API_KEYS: key %d is shorter than 16 characters", i+1)
		}
		k.names = append(k.names, fmt.Sprintf("env-%d", i+1))
		k.digests = append(k.digests, sha256.Sum256([]byte(p.Reveal())))
	}
	return k, nil
}

// Len is the number of keys.
func (k *Keys) Len() int { return len(k.names) }

// Check validates an Authorization header value and returns the key's name.
// Every configured key is compared, so timing does not reveal which matched.
func (k *Keys) Check(header string) (string, bool) {
	if k == nil {
		return "", false
	}
	token, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || token == "" {
		return "", false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(token)))
	name, found := "", false
	for i := range k.digests {
		if subtle.ConstantTimeCompare(d[:], k.digests[i][:]) == 1 && !found {
			name, found = k.names[i], true
		}
	}
	return name, found
}

// NewKey makes a random API key and its configuration entry.
func NewKey(name string) (secret.Secret, Key) {
	b := make([]byte, 32)
	rand.Read(b)
	key := "ctb_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	return secret.Secret(key), Key{Name: name, SHA256: hex.EncodeToString(sum[:])}
}
