package ctibridge

import (
	"crypto/sha256"
	"encoding/hex"
)

// SysID derives the interaction's sys_id from the namespace and the master
// contact id: 32 lowercase hex characters, like a ServiceNow sys_id. Because it
// is known before ServiceNow is called, the intake can hand Studio the
// screen-pop URL at once, and a create that timed out is settled by reading
// that sys_id back instead of inserting twice. Distinct namespaces (one per
// bridge deployment or tenant) keep two bridges writing to one instance apart.
func SysID(namespace, masterID string) string {
	h := sha256.Sum256([]byte("ctibridge/interaction\x00" + namespace + "\x00" + masterID))
	return hex.EncodeToString(h[:16])
}

// RelatedSysID derives the sys_id of an interaction_related_record, so each
// related record is created exactly once even when a job is retried.
func RelatedSysID(interaction, table, document string) string {
	h := sha256.Sum256([]byte("ctibridge/related\x00" + interaction + "\x00" + table + "\x00" + document))
	return hex.EncodeToString(h[:16])
}
