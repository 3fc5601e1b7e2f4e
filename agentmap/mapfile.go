package agentmap

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// MapFile is the explicit agent map: CXone agent id → ServiceNow sys_id or
// user_name. CSV (two columns; a header line starting with "agent" is skipped)
// or YAML (a mapping), by extension. It is re-read when its modification time
// changes, checked at most every few seconds, so operators can edit it without
// a restart; a file that no longer parses keeps the last good map.
type MapFile struct {
	path string

	mu      sync.Mutex
	entries map[string]string
	modTime time.Time
	checked time.Time
	changed bool
	lastErr error
}

const recheck = 2 * time.Second

// OpenMapFile reads the map file.
func OpenMapFile(path string) (*MapFile, error) {
	m := &MapFile{path: path}
	if err := m.load(); err != nil {
		return nil, err
	}
	m.changed = false
	return m, nil
}

// Lookup returns the target for a CXone agent id.
func (m *MapFile) Lookup(agentID string) (string, bool) {
	m.maybeReload()
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.entries[agentID]
	return v, ok
}

// Changed reports (once) whether the file was reloaded since the last call.
func (m *MapFile) Changed() bool {
	m.maybeReload()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.changed
	m.changed = false
	return c
}

// Err is the last reload error, nil if the current file parsed.
func (m *MapFile) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

func (m *MapFile) maybeReload() {
	m.mu.Lock()
	due := time.Since(m.checked) >= recheck
	m.mu.Unlock()
	if due {
		m.load()
	}
}

func (m *MapFile) load() error {
	m.mu.Lock()
	m.checked = time.Now()
	m.mu.Unlock()
	st, err := os.Stat(m.path)
	if err != nil {
		return m.fail(fmt.Errorf("agent map %s: %w", m.path, err))
	}
	m.mu.Lock()
	same := st.ModTime().Equal(m.modTime) && m.entries != nil
	m.mu.Unlock()
	if same {
		return nil
	}
	b, err := os.ReadFile(m.path)
	if err != nil {
		return m.fail(fmt.Errorf("agent map %s: %w", m.path, err))
	}
	entries, err := parseMap(m.path, b)
	if err != nil {
		return m.fail(fmt.Errorf("agent map %s: %w", m.path, err))
	}
	m.mu.Lock()
	m.entries, m.modTime, m.changed, m.lastErr = entries, st.ModTime(), true, nil
	m.mu.Unlock()
	return nil
}

func (m *MapFile) fail(err error) error {
	m.mu.Lock()
	m.lastErr = err
	m.mu.Unlock()
	return err
}

func parseMap(path string, b []byte) (map[string]string, error) {
	out := map[string]string{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		if err := yaml.Unmarshal(b, &out); err != nil {
			return nil, err
		}
	case ".csv":
		r := csv.NewReader(bytes.NewReader(b))
		r.FieldsPerRecord = 2
		r.TrimLeadingSpace = true
		r.Comment = '#'
		for line := 1; ; line++ {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if line == 1 && strings.HasPrefix(strings.ToLower(rec[0]), "agent") {
				continue
			}
			id, target := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
			if id == "" || target == "" {
				return nil, fmt.Errorf("line %d: agent id and target are required", line)
			}
			out[id] = target
		}
	default:
		return nil, errors.New("must end in .csv, .yaml or .yml")
	}
	return out, nil
}
