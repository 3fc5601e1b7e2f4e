package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/secret"
)

// The worked example of the docs (README "Security", studio/README.md,
// openapi.json). Its numbers were computed independently with sha256sum and
// openssl.
const (
	exSecret    = "ctibridge-example-secret"
	exTS        = "1767225600"
	exMethod    = "POST"
	exPath      = "/v1/contacts/630241195/released"
	exBody      = `{"contactId":"630241377","reason":"Contact Hung Up","disposition":"Resolved"}`
	exBodyHash  = "777dae05b7c99c007dc3a8039da710758ceb792fcd48661653000c1e0f880e28"
	exSignature = "04469579b1860f98a17fca8dafb4a1b22fb9deb9e10af67af609e3bb320e9896"
)

// TestSignWorkedExample: Sign gives the documented signature for the
// documented inputs, and every document shows the same example, so the docs
// cannot drift from the code.
func TestSignWorkedExample(t *testing.T) {
	if sum := sha256.Sum256([]byte(exBody)); hex.EncodeToString(sum[:]) != exBodyHash {
		t.Fatalf("body hash %x, the docs say %s", sum, exBodyHash)
	}
	if got := Sign(exSecret, exTS, exMethod, exPath, []byte(exBody)); got != exSignature {
		t.Fatalf("Sign = %s, the docs say %s", got, exSignature)
	}
	// Each input matters.
	for name, got := range map[string]string{
		"secret": Sign("ctibridge-example-secreT", exTS, exMethod, exPath, []byte(exBody)),
		"ts":     Sign(exSecret, "1767225601", exMethod, exPath, []byte(exBody)),
		"method": Sign(exSecret, exTS, "PUT", exPath, []byte(exBody)),
		"path":   Sign(exSecret, exTS, exMethod, "/v1/contacts/630241196/released", []byte(exBody)),
		"event":  Sign(exSecret, exTS, exMethod, "/v1/contacts/630241195/answered", []byte(exBody)),
		"body":   Sign(exSecret, exTS, exMethod, exPath, []byte(exBody+" ")),
	} {
		if got == exSignature {
			t.Errorf("another %s gives the same signature", name)
		}
	}

	docs := map[string]string{}
	for _, f := range []string{"../README.md", "../studio/README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = string(b)
	}
	var doc struct {
		Components struct {
			Parameters map[string]struct {
				Description string `json:"description"`
				Schema      struct {
					Example string `json:"example"`
				} `json:"schema"`
			} `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	sig := doc.Components.Parameters["signature"]
	docs["openapi.json"] = sig.Description
	if sig.Schema.Example != exSignature {
		t.Errorf("openapi.json: the signature example is %q, want %s", sig.Schema.Example, exSignature)
	}
	for name, text := range docs {
		for _, want := range []string{exSecret, exTS, exPath, exBody, exBodyHash, exSignature,
			`"\n" + METHOD + "\n" + path + "\n" + hex(SHA-256(body))`} {
			if name == "../studio/README.md" && strings.HasPrefix(want, `"\n"`) {
				want = "a line feed, `POST`, a line feed, `path`, a line feed, `bodyHash`"
			}
			if !strings.Contains(text, want) {
				t.Errorf("%s does not show %q", name, want)
			}
		}
	}

	// The shell recipe in the README gives the same signature.
	t.Run("shell", func(t *testing.T) {
		for _, tool := range []string{"bash", "sha256sum", "openssl"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("cannot run the README's shell recipe: %s is not on the PATH", tool)
			}
		}
		readme := docs["../README.md"]
		_, rest, ok := strings.Cut(readme, "The same with a shell")
		_, rest, ok2 := strings.Cut(rest, "```sh\n")
		script, _, ok3 := strings.Cut(rest, "```")
		if !ok || !ok2 || !ok3 {
			t.Fatal("README: no shell recipe after \"The same with a shell\"")
		}
		out, err := exec.Command("bash", "-o", "pipefail", "-c", script).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != exSignature {
			t.Errorf("the README's recipe prints %q (%v), want %s", out, err, exSignature)
		}
	})
}

// TestSignRequestSignsWhatIsSent: the path signed is the escaped path the
// client sends, without the query string.
func TestSignRequestSignsWhatIsSent(t *testing.T) {
	key := secret.Secret("0123456789abcdef")
	r, err := http.NewRequest("POST", "http://bridge.example/v1/contacts/%41b/queued?wait=2s", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1767225600, 0)
	SignRequest(r, key, []byte("{}"), now)
	if got := r.Header.Get(HeaderTimestamp); got != "1767225600" {
		t.Errorf("timestamp %q", got)
	}
	if got, want := r.Header.Get(HeaderSignature), Sign(key, "1767225600", "POST", "/v1/contacts/%41b/queued", []byte("{}")); got != want {
		t.Errorf("signature %s, want the one over the escaped path without the query (%s)", got, want)
	}
}
