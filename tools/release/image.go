package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image.
const (
	ImageBinary  = "/usr/bin/edgelink"
	ImageConfig  = "/etc/edgelink/edgelink.yaml"
	ImageWorkDir = "/var/lib/edgelink"
	ImagePort    = "9644/tcp"
)

// BuildImage writes the OCI image into dist as an OCI image layout in a tar
// (what skopeo and podman call an oci-archive): one image index with an image
// per architecture, each two layers on nothing (no base image): the files
// every image shares (the user edgelink, 65532, in /etc/passwd and
// /etc/group, and the directories it may write) and the static binary. The
// binary carries Mozilla's CA roots for when the system has none, as here.
func BuildImage(dist string, m Meta, arches []Arch) (string, error) {
	base, err := layer(m.Epoch, baseFiles())
	if err != nil {
		return "", err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, a := range arches {
		bin, err := os.ReadFile(filepath.Join(dist, BinaryName(m.Version, a)))
		if err != nil {
			return "", fmt.Errorf("image for %s: %w (build it first: make release)", a.Name, err)
		}
		img, err := image(m, a, base, bin)
		if err != nil {
			return "", fmt.Errorf("image for %s: %w", a.Name, err)
		}
		platform := a.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	idx, ok := mutate.Annotations(idx, m.annotations()).(v1.ImageIndex)
	if !ok {
		return "", fmt.Errorf("annotate the image index")
	}

	dir, err := os.MkdirTemp("", "edgelink-oci-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("write OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": m.Version})); err != nil {
		return "", fmt.Errorf("write OCI layout: %w", err)
	}
	out := filepath.Join(dist, ImageName(m.Version))
	if err := tarDir(dir, out, m.Epoch); err != nil {
		return "", fmt.Errorf("write %s: %w", out, err)
	}
	return out, nil
}

func (m Meta) annotations() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    "edgelink",
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.revision": m.Commit,
		"org.opencontainers.image.created":  m.Epoch.UTC().Format(time.RFC3339),
	}
}

func image(m Meta, a Arch, base v1.Layer, bin []byte) (v1.Image, error) {
	binLayer, err := layer(m.Epoch, []file{
		{name: "usr/", mode: fs.ModeDir | 0o755},
		{name: "usr/bin/", mode: fs.ModeDir | 0o755},
		{name: "usr/bin/edgelink", mode: 0o755, data: bin},
	})
	if err != nil {
		return nil, err
	}
	user := strconv.Itoa(ImageUID) + ":" + strconv.Itoa(ImageGID)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: a.Platform.Architecture,
		OS:           a.Platform.OS,
		Variant:      a.Platform.Variant,
		Created:      v1.Time{Time: m.Epoch.UTC()},
		Config: v1.Config{
			User:         user,
			Entrypoint:   []string{ImageBinary},
			Cmd:          []string{"run", "-c", ImageConfig},
			Env:          []string{"PATH=/usr/bin"},
			WorkingDir:   ImageWorkDir,
			ExposedPorts: map[string]struct{}{ImagePort: {}},
			Labels:       m.annotations(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: m.Epoch.UTC()}
	return mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "edgelink release: user edgelink (" + user + "), /tmp, " + ImageWorkDir}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{Created: created, CreatedBy: "edgelink release: " + ImageBinary + " " + m.Version + " linux/" + a.Name}},
	)
}

// baseFiles are the files every image has: a user to run as, its group, name
// resolution from files then DNS, and the directories it may write.
func baseFiles() []file {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		fmt.Sprintf("edgelink:x:%d:%d:edgelink:%s:/sbin/nologin\n", ImageUID, ImageGID, ImageWorkDir)
	group := "root:x:0:\n" + fmt.Sprintf("edgelink:x:%d:\n", ImageGID)
	return []file{
		{name: "etc/", mode: fs.ModeDir | 0o755},
		{name: "etc/edgelink/", mode: fs.ModeDir | 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "tmp/", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{name: "var/", mode: fs.ModeDir | 0o755},
		{name: "var/lib/", mode: fs.ModeDir | 0o755},
		{name: "var/lib/edgelink/", mode: fs.ModeDir | 0o750, uid: ImageUID, gid: ImageGID},
	}
}

type file struct {
	name     string
	mode     fs.FileMode
	uid, gid int
	data     []byte
}

// layer makes a gzipped layer of files, in their order, every time mtime:
// the same files give the same digest.
func layer(mtime time.Time, files []file) (v1.Layer, error) {
	var tarred bytes.Buffer
	tw := tar.NewWriter(&tarred)
	for _, f := range files {
		h := &tar.Header{
			Name:    f.name,
			Mode:    int64(f.mode.Perm()),
			Uid:     f.uid,
			Gid:     f.gid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if f.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if f.mode.IsDir() {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarred.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// tarDir writes the files under dir into the tar out, sorted by name, owned
// by root, every time mtime.
func tarDir(dir, out string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, p := range names {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		if st.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
