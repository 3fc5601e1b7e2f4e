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
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ctibridge/ctibridge/filewatch"
)

// MapFile is the explicit agent map: CXone agent id → ServiceNow sys_id or
// user_name. CSV (two columns; a header line starting with "agent" is skipped)
// or YAML (a mapping), by extension. It is read again when it changes
// (checked at most every few seconds), so operators can edit it without a
// restart; a file that no longer parses keeps the last good map.
type MapFile struct {
	w *filewatch.Value[map[string]string]
}

const recheck = 2 * time.Second

// OpenMapFile reads the map file.
func OpenMapFile(path string) (*MapFile, error) {
	w, err := filewatch.New(recheck, func() (map[string]string, error) {
		b, err := os.ReadFile(path)
		if err == nil {
			var m map[string]string
			if m, err = parseMap(path, b); err == nil {
				return m, nil
			}
		}
		return nil, fmt.Errorf("agent map %s: %w", path, err)
	}, path)
	if err != nil {
		return nil, err
	}
	return &MapFile{w}, nil
}

// Lookup returns the target for a CXone agent id.
func (m *MapFile) Lookup(agentID string) (string, bool) {
	v, ok := m.w.Get()[agentID]
	return v, ok
}

// Changed reports (once) whether the file was reloaded since the last call.
func (m *MapFile) Changed() bool { return m.w.Changed() }

// Err is the last reload error, nil if the current file parsed.
func (m *MapFile) Err() error { return m.w.Err() }

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
