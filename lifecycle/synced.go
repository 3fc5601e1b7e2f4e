// What ServiceNow is known to hold for a call: the reconciler's memory
// between attempts, stored with the call.

package lifecycle

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/ctibridge/ctibridge"
)

// synced is what ServiceNow is known to hold for one call: the reconciler's
// memory between attempts, stored with the contact. Fields holds the values
// last written (or read back), so only differences are sent.
type synced struct {
	Created   bool                           `json:"created,omitempty"`
	SysID     string                         `json:"sysId,omitempty"` // differs from the derived one only if the instance ignored it
	Number    string                         `json:"number,omitempty"`
	Fields    map[string]string              `json:"fields,omitempty"`
	Notes     []string                       `json:"notes,omitempty"`   // keys of work notes written
	Related   []string                       `json:"related,omitempty"` // table:sys_id of related records linked
	Caller    *ctibridge.Caller              `json:"caller,omitempty"`  // identification, done once per ANI
	CallerANI string                         `json:"callerAni,omitempty"`
	Agents    map[string]ctibridge.AgentUser `json:"agents,omitempty"` // per agent key, resolved once per call
	// ModCount is the record's sys_mod_count after ctibridge's last write
	// that is known to have landed, and Writer the user the instance
	// records for ctibridge's writes (sys_created_by of the record).
	ModCount string `json:"modCount,omitempty"`
	Writer   string `json:"writer,omitempty"`
	// NotesUnsure are the keys of notes sent in a write whose outcome is
	// unknown (the reply was lost): settled by reading the record back
	// before any note is written again.
	NotesUnsure []string `json:"notesUnsure,omitempty"`
	// CreateNotes: NotesUnsure were sent in a create whose outcome is
	// unknown (the record is not known to exist yet).
	CreateNotes bool `json:"createNotes,omitempty"`
	// Tried: an attempt on the call has ended (or was interrupted), so a
	// create without notes may have been sent. Only the first attempt's
	// create carries notes: were the record made by an earlier create
	// without them, a create with notes that found it made could not tell.
	Tried bool `json:"tried,omitempty"`
	// Rewritten are fields ServiceNow stored otherwise than written, with
	// the value ctibridge wrote: not written again while the call wants
	// that same value.
	Rewritten map[string]string `json:"rewritten,omitempty"`
	// RelatedUnsure are related records whose create may have been
	// applied without a reply.
	RelatedUnsure []string `json:"relatedUnsure,omitempty"`
	// TasksFound: the caller's open tasks (Caller.Related) were looked up.
	TasksFound bool `json:"tasksFound,omitempty"`
	// FailingSince is when the current run of failed attempts began.
	FailingSince time.Time `json:"failingSince,omitzero"`
}

func decodeSynced(b []byte) (synced, error) {
	var s synced
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode synced state: %w", err)
	}
	return s, nil
}

func (s synced) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

// takeOver prepares the state an interrupted attempt left (one that never
// released its call: its process died, or its lease ran out) for the attempt
// after it. The interrupted attempt may have written to the record without
// recording it:
//   - the fields known to be stored may not be what the record holds (an
//     update with an earlier agent landed, unrecorded): every field is
//     written again;
//   - the sys_mod_count known from before is stale: were a note's write to
//     be lost later, the record's count having grown would count it as
//     written. It is read again before notes are written. Notes whose
//     write was under way are settled against the count stored with them,
//     which the settling reads afresh;
//   - it may have sent a create (see Tried).
func (s *synced) takeOver() {
	s.Fields = nil
	if len(s.NotesUnsure) == 0 {
		s.ModCount = ""
	}
	s.Tried = true
}

// createNotesLanded settles the notes creates of unknown outcome carried,
// once the record is known to exist: written are the keys of the notes
// that the create which made it carried.
func (s *synced) createNotesLanded(written []string) {
	s.Notes = append(s.Notes, written...)
	s.CreateNotes, s.NotesUnsure = false, nil
}

func (s synced) hasNote(key string) bool { return slices.Contains(s.Notes, key) }

// appendNew appends k unless list holds it.
func appendNew(list []string, k string) []string {
	if slices.Contains(list, k) {
		return list
	}
	return append(list, k)
}
