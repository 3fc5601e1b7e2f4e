package bridge

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/ctibridge/ctibridge/filewatch"
)

// certReloader serves a certificate from files and re-reads them when they
// change (checked at most every few seconds), so a renewed certificate is
// picked up without a restart. A renewal that fails to load keeps the
// previous certificate in service.
type certReloader struct {
	w *filewatch.Value[*tls.Certificate]
}

const certRecheck = 5 * time.Second

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	w, err := filewatch.New(certRecheck, func() (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		return &c, nil
	}, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &certReloader{w}, nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.w.Get(), nil
}

func (r *certReloader) listener(ln net.Listener) net.Listener {
	return tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate})
}
