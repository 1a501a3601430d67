package loop

import (
	"github.com/lesismal/llib/std/crypto/tls"

	"github.com/wsrelay/wsrelay/config"
)

// loadTLS returns the TLS configuration of cfg, or nil when no certificate
// is configured. A certificate or key that cannot be loaded is an error
// naming its variable, so the server stops before it listens.
//
// The configuration keeps each connection cheap: TLS 1.2 and 1.3 only,
// X25519 first (the fastest key exchange, and the one every current client
// offers), AEAD cipher suites only, and session tickets so that reconnecting
// clients resume without a full handshake. Dynamic record sizing is off so
// that the ciphertext of a write is known in advance (tlsRecordOverhead):
// wsConn counts it as in flight, which keeps backpressure exact over TLS.
func loadTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, &config.Error{Var: config.Prefix + "TLS_CERT_FILE", Err: err}
	}
	return &tls.Config{
		Certificates:     []tls.Certificate{cert},
		MinVersion:       tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
		NextProtos:                  []string{"http/1.1"},
		DynamicRecordSizingDisabled: true,
	}, nil
}

// maxTLSRecord is the plaintext carried by one TLS record. Dynamic record
// sizing is off (see loadTLS), so every record but a write's last is full.
const maxTLSRecord = 16 << 10

// tlsRecordOverhead returns the ciphertext bytes one TLS record adds to its
// plaintext for the negotiated version and cipher suite: the 5-byte record
// header, the 16-byte AEAD tag, and either TLS 1.3's inner content type or
// TLS 1.2 AES-GCM's 8-byte explicit nonce. loadTLS allows AEAD suites only.
func tlsRecordOverhead(st tls.ConnectionState) int {
	switch {
	case st.Version >= tls.VersionTLS13:
		return 5 + 1 + 16
	case st.CipherSuite == tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 || st.CipherSuite == tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305:
		return 5 + 16
	default:
		return 5 + 8 + 16
	}
}
