package release

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Dist is a release written into a directory: its version and what its
// SHA256SUMS lists.
type Dist struct {
	Dir     string
	Version string
	Sums    map[string]string // file name to hex SHA-256
}

// ReadDist reads the release in dir from its SHA256SUMS.
func ReadDist(dir string) (*Dist, error) {
	data, err := os.ReadFile(filepath.Join(dir, SumsName))
	if err != nil {
		return nil, err
	}
	d := &Dist{Dir: dir, Sums: make(map[string]string)}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 || name == "" {
			return nil, fmt.Errorf("%s: line %q: want <sha256>  <name>", SumsName, sc.Text())
		}
		if _, dup := d.Sums[name]; dup {
			return nil, fmt.Errorf("%s: %s listed twice", SumsName, name)
		}
		d.Sums[name] = sum
		if v, ok := strings.CutPrefix(name, "edgelink_"); ok {
			if v, ok := strings.CutSuffix(v, "_oci.tar"); ok {
				d.Version = v
			}
		}
	}
	if d.Version == "" {
		return nil, fmt.Errorf("%s lists no edgelink_<version>_oci.tar", SumsName)
	}
	return d, nil
}

// Path is the path of the file name in the release.
func (d *Dist) Path(name string) string { return filepath.Join(d.Dir, name) }

// HostArch is the release's architecture this machine runs, if any.
func HostArch() (Arch, error) {
	for _, a := range Arches {
		if a.GOARCH == runtime.GOARCH {
			return a, nil
		}
	}
	return Arch{}, errors.New("this machine runs none of the release's architectures")
}
