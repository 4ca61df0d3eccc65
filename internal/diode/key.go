package diode

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Key is the 256-bit key shared by a sender and its receiver. It both
// encrypts and authenticates every datagram.
type Key [32]byte

// GenerateKey returns a new random key.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("generate diode key: %w", err)
	}
	return k, nil
}

// keyComment opens every key file.
const keyComment = "# edgelink diode key: secret, the same file at the sender and the receiver"

// WriteKeyFile writes k to a new file at path, as a comment line and the key
// in hex, readable by its owner only. It refuses to overwrite a file.
func WriteKeyFile(path string, k Key) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write diode key: %s exists; a key file is never overwritten", path)
		}
		return fmt.Errorf("write diode key: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s\n%s\n", keyComment, hex.EncodeToString(k[:]))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write diode key %s: %w", path, err)
	}
	return nil
}

// LoadKeyFile reads a key written by [WriteKeyFile]: lines starting with #
// and blank lines are ignored, the one remaining line is the key in hex. It
// refuses a file that its group or others may read.
func LoadKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("load diode key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("load diode key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Key{}, fmt.Errorf("load diode key: %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("load diode key: %s is readable by others than its owner (mode %04o); run chmod 600 %s", path, perm, path)
	}
	var hexKey string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if hexKey != "" {
			return Key{}, fmt.Errorf("load diode key: %s holds more than one key line", path)
		}
		hexKey = line
	}
	if err := sc.Err(); err != nil {
		return Key{}, fmt.Errorf("load diode key %s: %w", path, err)
	}
	if hexKey == "" {
		return Key{}, fmt.Errorf("load diode key: %s holds no key", path)
	}
	raw, err := hex.DecodeString(hexKey)
	if err != nil {
		return Key{}, fmt.Errorf("load diode key: %s is not hex: %w", path, err)
	}
	var k Key
	if len(raw) != len(k) {
		return Key{}, fmt.Errorf("load diode key: %s holds a %d-byte key, want %d bytes (%d hex digits)", path, len(raw), len(k), 2*len(k))
	}
	copy(k[:], raw)
	if bytes.Equal(k[:], make([]byte, len(k))) {
		return Key{}, fmt.Errorf("load diode key: %s holds the all-zero key", path)
	}
	return k, nil
}
