package dist_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"

	"github.com/edgelink/edgelink/tools/release"
)

const (
	repo    = "../../.."
	mainPkg = "github.com/edgelink/edgelink/cmd/edgelink"
)

// required: EDGELINK_RELEASE=required (make release-test) turns every skip
// for want of a release, root or dpkg into a failure.
var required = os.Getenv("EDGELINK_RELEASE") == "required"

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if required {
		t.Fatalf("%s (EDGELINK_RELEASE=required)", msg)
	}
	t.Skip(msg)
}

// dist is the release under test: EDGELINK_DIST, else dist/ of the repository.
func dist(t *testing.T) *release.Dist {
	t.Helper()
	dir := os.Getenv("EDGELINK_DIST")
	if dir == "" {
		dir = filepath.Join(repo, "dist")
	}
	d, err := release.ReadDist(dir)
	if errors.Is(err, fs.ErrNotExist) {
		skipOrFail(t, "no release in %s: make release first", dir)
	}
	require.NoError(t, err)
	return d
}

// stamp is what make release stamped into the binaries with -ldflags -X.
type stamp struct {
	version, commit, date string
	epoch                 time.Time
}

// buildSettings reads the build settings of a Go binary, whatever its
// architecture.
func buildSettings(t *testing.T, file string) (map[string]string, *buildinfo.BuildInfo) {
	t.Helper()
	bi, err := buildinfo.ReadFile(file)
	require.NoError(t, err, "%s is no Go binary", file)
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	return settings, bi
}

// releaseStamp is what edgelink version of the binary this machine runs
// says: the stamp of the whole release. (-trimpath keeps -ldflags out of the
// build information.)
func releaseStamp(t *testing.T, d *release.Dist) stamp {
	t.Helper()
	host, err := release.HostArch()
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), d.Path(release.BinaryName(d.Version, host)), "version").Output()
	require.NoError(t, err)
	var s stamp
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		switch {
		case len(f) != 2:
		case f[0] == "edgelink":
			s.version = f[1]
		case f[0] == "commit":
			s.commit = f[1]
		case f[0] == "built":
			s.date = f[1]
		}
	}
	require.Equal(t, d.Version, s.version, "edgelink version says another version than the file names:\n%s", out)
	require.Regexp(t, `^[0-9a-f]{40}$`, s.commit, "edgelink version's commit:\n%s", out)
	s.epoch, err = time.Parse(time.RFC3339, s.date)
	require.NoError(t, err, "edgelink version's build date:\n%s", out)
	return s
}

func sha256File(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// TestSums: SHA256SUMS lists every file of the release, by its contract
// name, with its true hash, and nothing else is in dist.
func TestSums(t *testing.T) {
	d := dist(t)
	want := []string{release.ImageName(d.Version)}
	for _, a := range release.Arches {
		want = append(want, release.BinaryName(d.Version, a), release.DebName(d.Version, a))
	}
	slices.Sort(want)
	got := slices.Sorted(func(yield func(string) bool) {
		for name := range d.Sums {
			if !yield(name) {
				return
			}
		}
	})
	require.Equal(t, want, got, "the files SHA256SUMS lists")
	for name, sum := range d.Sums {
		require.Equal(t, sum, sha256File(t, d.Path(name)), "%s does not match SHA256SUMS", name)
	}
	entries, err := os.ReadDir(d.Dir)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	require.ElementsMatch(t, append(want, release.SumsName), files, "what dist holds")
}

// TestBinaries: each binary is a static, stripped executable for its
// architecture, built by make release's rules and stamped with one version,
// commit and date; the one this machine runs says so in edgelink version.
func TestBinaries(t *testing.T) {
	d := dist(t)
	want := releaseStamp(t, d)
	abs, err := filepath.Abs(repo)
	require.NoError(t, err)
	for _, a := range release.Arches {
		t.Run(a.Name, func(t *testing.T) {
			file := d.Path(release.BinaryName(d.Version, a))
			settings, bi := buildSettings(t, file)
			require.Equal(t, mainPkg, bi.Path)
			require.Equal(t, runtime.Version(), bi.GoVersion, "built by another Go than this test")
			for k, v := range map[string]string{"GOOS": "linux", "GOARCH": a.GOARCH, "CGO_ENABLED": "0", "-trimpath": "true"} {
				require.Equal(t, v, settings[k], "build setting %s", k)
			}
			if a.GOARM != "" {
				require.Equal(t, a.GOARM, settings["GOARM"], "GOARM")
			}
			for k := range settings {
				require.False(t, strings.HasPrefix(k, "vcs."), "VCS stamping (%s) makes a build depend on the checkout", k)
			}
			require.True(t, slices.ContainsFunc(bi.Deps, func(m *debug.Module) bool {
				return m.Path == "golang.org/x/crypto/x509roots/fallback"
			}), "the binary carries no fallback CA roots: TLS fails in the image, which has no CA bundle")

			f, err := elf.Open(file)
			require.NoError(t, err)
			defer func() { require.NoError(t, f.Close()) }()
			wantMachine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "arm": elf.EM_ARM}[a.GOARCH]
			require.Equal(t, wantMachine, f.Machine)
			require.Equal(t, elf.ET_EXEC, f.Type)
			for _, p := range f.Progs {
				require.NotEqual(t, elf.PT_INTERP, p.Type, "dynamically linked: it needs a loader")
			}
			libs, err := f.ImportedLibraries()
			require.NoError(t, err)
			require.Empty(t, libs, "it needs shared libraries")
			for _, sec := range f.Sections {
				require.NotEqual(t, ".symtab", sec.Name, "not stripped (-s)")
				require.False(t, strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_"), "DWARF left in (-w): %s", sec.Name)
			}
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, v := range []string{want.version, want.commit, want.date} {
				require.True(t, bytes.Contains(data, []byte(v)), "%s is not stamped with %s", a.Name, v)
			}
			require.False(t, bytes.Contains(data, []byte(abs)), "the binary holds the path it was built in (%s): -trimpath", abs)
		})
	}
}

// arMember is one member of an ar archive (a .deb).
type arMember struct {
	name  string
	mtime int64
	data  []byte
}

func readAr(t *testing.T, file string) []arMember {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(data, []byte("!<arch>\n")), "%s is not an ar archive", file)
	data = data[8:]
	var ms []arMember
	for len(data) > 0 {
		require.GreaterOrEqual(t, len(data), 60, "%s: a truncated ar header", file)
		h := data[:60]
		require.Equal(t, "`\n", string(h[58:60]), "%s: a bad ar header", file)
		size, err := strconv.Atoi(strings.TrimSpace(string(h[48:58])))
		require.NoError(t, err)
		mtime, err := strconv.ParseInt(strings.TrimSpace(string(h[16:28])), 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(data), 60+size)
		ms = append(ms, arMember{name: strings.TrimSuffix(strings.TrimSpace(string(h[:16])), "/"), mtime: mtime, data: data[60 : 60+size]})
		data = data[60+size:]
		if size%2 == 1 && len(data) > 0 {
			data = data[1:]
		}
	}
	return ms
}

// tarEntry is a file of a tar, with its header.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTarGz(t *testing.T, what string, data []byte) map[string]tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err, what)
	return readTar(t, what, zr)
}

func readTar(t *testing.T, what string, r io.Reader) map[string]tarEntry {
	t.Helper()
	entries := map[string]tarEntry{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, what)
		b, err := io.ReadAll(tr)
		require.NoError(t, err, what)
		name := "/" + strings.TrimPrefix(path.Clean(h.Name), "./")
		require.NotContains(t, entries, name, "%s holds %s twice", what, name)
		entries[name] = tarEntry{hdr: h, data: b}
	}
	return entries
}

func controlFields(t *testing.T, control []byte) map[string]string {
	t.Helper()
	fields := map[string]string{}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(control))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") {
			fields[last] += "\n" + line
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		require.True(t, ok, "control line %q", line)
		last = k
		fields[k] = strings.TrimSpace(v)
	}
	return fields
}

func readRepo(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, name))
	require.NoError(t, err)
	return b
}

// TestDebs: each .deb holds what an edge box needs, with the right
// metadata, as dpkg-deb would read it, every time the commit's.
func TestDebs(t *testing.T) {
	d := dist(t)
	s := releaseStamp(t, d)
	debVersion, err := release.DebVersion(d.Version)
	require.NoError(t, err)
	for _, a := range release.Arches {
		t.Run(a.Name, func(t *testing.T) {
			ms := readAr(t, d.Path(release.DebName(d.Version, a)))
			var names []string
			for _, m := range ms {
				names = append(names, m.name)
				require.Equal(t, s.epoch.Unix(), m.mtime, "ar member %s: its time is not the commit's", m.name)
			}
			require.Equal(t, []string{"debian-binary", "control.tar.gz", "data.tar.gz"}, names)
			require.Equal(t, "2.0\n", string(ms[0].data))

			control := readTarGz(t, "control.tar.gz", ms[1].data)
			fields := controlFields(t, control["/control"].data)
			for k, v := range map[string]string{"Package": "edgelink", "Version": debVersion, "Architecture": a.Debian, "Depends": "passwd", "Section": "net"} {
				require.Equal(t, v, fields[k], "control field %s", k)
			}
			require.Equal(t, "/etc/default/edgelink\n/etc/edgelink/edgelink.yaml\n", string(control["/conffiles"].data), "conffiles")
			for _, script := range []string{"postinst", "prerm", "postrm"} {
				e, ok := control["/"+script]
				require.True(t, ok, "no %s", script)
				require.Equal(t, string(readRepo(t, "deploy/deb/"+script)), string(e.data), script)
				require.Equal(t, int64(0o755), e.hdr.Mode&0o777, "%s is not executable", script)
			}

			data := readTarGz(t, "data.tar.gz", ms[2].data)
			binary, err := os.ReadFile(d.Path(release.BinaryName(d.Version, a)))
			require.NoError(t, err)
			for _, f := range []struct {
				path string
				mode int64
				want []byte
			}{
				{"/usr/bin/edgelink", 0o755, binary},
				{"/etc/edgelink/edgelink.yaml", 0o644, readRepo(t, "examples/edgelink.yaml")},
				{"/etc/default/edgelink", 0o600, readRepo(t, "deploy/deb/edgelink.default")},
				{"/usr/lib/systemd/system/edgelink.service", 0o644, readRepo(t, "examples/edgelink.service")},
			} {
				e, ok := data[f.path]
				require.True(t, ok, "the package has no %s", f.path)
				require.Equal(t, f.mode, e.hdr.Mode&0o7777, "%s mode", f.path)
				require.True(t, bytes.Equal(f.want, e.data), "%s is not the file of the release", f.path)
			}
			var md5sums []string
			for name, e := range data {
				require.Equal(t, 0, e.hdr.Uid, "%s: not owned by root", name)
				require.Equal(t, 0, e.hdr.Gid, "%s: not owned by root", name)
				require.True(t, e.hdr.ModTime.Equal(s.epoch), "%s: its time %s is not the commit's %s", name, e.hdr.ModTime, s.epoch)
				if e.hdr.Typeflag == tar.TypeReg {
					sum := md5.Sum(e.data)
					md5sums = append(md5sums, hex.EncodeToString(sum[:])+"  "+strings.TrimPrefix(name, "/"))
				}
			}
			got := strings.Split(strings.TrimSpace(string(control["/md5sums"].data)), "\n")
			require.ElementsMatch(t, md5sums, got, "md5sums")
		})
	}
}

// TestDebInstall installs the .deb of this machine's architecture with dpkg,
// as root, checks what it set up, verifies the systemd unit, checks the
// installed configuration as the service's user, and purges it again.
func TestDebInstall(t *testing.T) {
	d := dist(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "installing a .deb needs root")
	}
	for _, tool := range []string{"dpkg", "dpkg-query", "systemd-analyze", "runuser"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not found: scripts/setup installs it", tool)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", "edgelink").Output(); err == nil && string(out) != "not-installed" {
		t.Fatalf("edgelink is installed on this machine already (%s): dpkg --purge edgelink, then run this again", out)
	}
	_, statErr := os.Stat("/var/lib/edgelink")
	hadStateDir := statErr == nil
	host, err := release.HostArch()
	require.NoError(t, err)
	s := releaseStamp(t, d)

	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), name, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
		return string(out)
	}
	purged := false
	t.Cleanup(func() {
		if !purged {
			_ = exec.Command("dpkg", "--purge", "edgelink").Run()
		}
	})

	out := run("dpkg", "-i", d.Path(release.DebName(d.Version, host)))
	require.Contains(t, out, "systemctl start edgelink", "postinst tells what to do next")

	// The system user: no login, no home made for it.
	u := run("getent", "passwd", "edgelink")
	f := strings.Split(strings.TrimSpace(u), ":")
	require.Len(t, f, 7, u)
	uid, err := strconv.Atoi(f[2])
	require.NoError(t, err)
	require.Less(t, uid, 1000, "not a system user")
	require.Equal(t, "/var/lib/edgelink", f[5])
	require.Equal(t, "/usr/sbin/nologin", f[6])
	if !hadStateDir {
		_, err := os.Stat("/var/lib/edgelink")
		require.ErrorIs(t, err, fs.ErrNotExist, "postinst made the home; systemd's StateDirectory= does")
	}
	run("getent", "group", "edgelink")
	st, err := os.Stat("/etc/edgelink")
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o750), st.Mode().Perm(), "/etc/edgelink: only root and the service read its keys")
	require.Equal(t, "/etc/default/edgelink\n/etc/edgelink/edgelink.yaml", strings.Join(conffiles(t), "\n"))
	st, err = os.Stat("/etc/default/edgelink")
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm())

	// The unit: what the issue asks of it, and what systemd says of it.
	const unit = "/usr/lib/systemd/system/edgelink.service"
	unitText, err := os.ReadFile(unit)
	require.NoError(t, err)
	directives := strings.Split(string(unitText), "\n")
	for _, want := range []string{
		"User=edgelink", "Group=edgelink",
		"ExecStart=/usr/bin/edgelink run -c /etc/edgelink/edgelink.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID",
		"Restart=on-failure",
		"EnvironmentFile=-/etc/default/edgelink",
		"StateDirectory=edgelink",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=", "SystemCallFilter=@system-service",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"WantedBy=multi-user.target",
	} {
		require.Contains(t, directives, want, "the unit lacks %s", want)
	}
	out = run("systemd-analyze", "verify", "--man=no", unit)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify has something to say")
	out = run("systemd-analyze", "security", "--offline=true", unit)
	m := regexp.MustCompile(`Overall exposure level for edgelink\.service: ([0-9.]+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	exposure, err := strconv.ParseFloat(m[1], 64)
	require.NoError(t, err)
	require.LessOrEqual(t, exposure, 2.0, "systemd-analyze security rates the unit's exposure %s (was 1.4):\n%s", m[1], out)

	// The installed binary is the release's, and the installed configuration
	// is valid, read by the service's user through /etc/edgelink's permissions.
	out = run("/usr/bin/edgelink", "version")
	require.True(t, strings.HasPrefix(out, "edgelink "+d.Version+"\n"), out)
	require.Contains(t, out, "built     "+s.date)
	out = run("runuser", "-u", "edgelink", "--", "env", "CLOUD_USER=u", "CLOUD_PASSWORD=p",
		"/usr/bin/edgelink", "check", "-c", "/etc/edgelink/edgelink.yaml")
	require.Contains(t, out, "/etc/edgelink/edgelink.yaml: valid (2 clusters, 2 links)")

	// Purged, it leaves nothing behind: files, user, group.
	run("dpkg", "--purge", "edgelink")
	purged = true
	for _, p := range []string{"/usr/bin/edgelink", unit, "/etc/edgelink", "/etc/default/edgelink"} {
		_, err := os.Stat(p)
		require.ErrorIs(t, err, fs.ErrNotExist, "%s is left after dpkg --purge", p)
	}
	require.Error(t, exec.Command("getent", "passwd", "edgelink").Run(), "the user edgelink is left after dpkg --purge")
	require.Error(t, exec.Command("getent", "group", "edgelink").Run(), "the group edgelink is left after dpkg --purge")
}

func conffiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Conffiles}", "edgelink").Output()
	require.NoError(t, err)
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			files = append(files, f[0])
		}
	}
	slices.Sort(files)
	return files
}

// unpackOCI extracts the image's tar into a directory, checking that every
// entry is owned by root and carries the commit's time.
func unpackOCI(t *testing.T, file string, epoch time.Time) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	for name, e := range readTar(t, file, f) {
		require.True(t, e.hdr.ModTime.Equal(epoch), "%s: %s has time %s, not the commit's", file, name, e.hdr.ModTime)
		require.Equal(t, 0, e.hdr.Uid, name)
		p := filepath.Join(dir, filepath.FromSlash(name))
		if e.hdr.Typeflag == tar.TypeDir {
			require.NoError(t, os.MkdirAll(p, 0o755))
			continue
		}
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, e.data, 0o644))
	}
	return dir
}

// TestImage: the OCI layout holds one index of three images, one per
// platform, each on no base image, run as a user that is not root, with the
// release's binary; the one this machine runs prints its version.
func TestImage(t *testing.T) {
	d := dist(t)
	s := releaseStamp(t, d)
	dir := unpackOCI(t, d.Path(release.ImageName(d.Version)), s.epoch)
	oci, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	require.NoError(t, err)
	require.JSONEq(t, `{"imageLayoutVersion": "1.0.0"}`, string(oci))

	top, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	topManifest, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, topManifest.Manifests, 1, "index.json names one image index")
	desc := topManifest.Manifests[0]
	require.Equal(t, types.OCIImageIndex, desc.MediaType)
	require.Equal(t, d.Version, desc.Annotations["org.opencontainers.image.ref.name"])

	idx, err := top.ImageIndex(desc.Digest)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Equal(t, types.OCIImageIndex, im.MediaType)
	require.Equal(t, d.Version, im.Annotations["org.opencontainers.image.version"])
	require.Equal(t, s.commit, im.Annotations["org.opencontainers.image.revision"])
	require.Equal(t, s.date, im.Annotations["org.opencontainers.image.created"])

	var platforms []string
	for _, m := range im.Manifests {
		require.NotNil(t, m.Platform)
		platforms = append(platforms, m.Platform.String())
	}
	require.Equal(t, []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}, platforms, "the index's platforms")

	host, err := release.HostArch()
	require.NoError(t, err)
	var baseLayer v1.Hash
	for i, a := range release.Arches {
		t.Run(a.Name, func(t *testing.T) {
			m := im.Manifests[i]
			require.Equal(t, types.OCIManifestSchema1, m.MediaType)
			img, err := idx.Image(m.Digest)
			require.NoError(t, err)
			cfg, err := img.ConfigFile()
			require.NoError(t, err)
			require.Equal(t, a.Platform.Architecture, cfg.Architecture)
			require.Equal(t, a.Platform.Variant, cfg.Variant)
			require.Equal(t, "linux", cfg.OS)
			require.True(t, cfg.Created.Equal(s.epoch), "created %s, not the commit's time", cfg.Created)

			// Not root: a numeric user and group, named in the image's own /etc/passwd.
			uid, gid, ok := strings.Cut(cfg.Config.User, ":")
			require.True(t, ok, "user %q: want uid:gid", cfg.Config.User)
			require.Equal(t, strconv.Itoa(release.ImageUID), uid)
			require.Equal(t, strconv.Itoa(release.ImageGID), gid)
			require.NotEqual(t, "0", uid, "the image runs as root")
			require.Equal(t, []string{release.ImageBinary}, cfg.Config.Entrypoint)
			require.Equal(t, []string{"run", "-c", release.ImageConfig}, cfg.Config.Cmd)
			require.Equal(t, release.ImageWorkDir, cfg.Config.WorkingDir)
			require.Contains(t, cfg.Config.ExposedPorts, release.ImagePort)
			require.Equal(t, s.commit, cfg.Config.Labels["org.opencontainers.image.revision"])

			layers, err := img.Layers()
			require.NoError(t, err)
			require.Len(t, layers, 2, "the shared files and the binary, on no base image")
			for _, l := range layers {
				mt, err := l.MediaType()
				require.NoError(t, err)
				require.Equal(t, types.OCILayer, mt)
			}
			base, err := layers[0].Digest()
			require.NoError(t, err)
			if i == 0 {
				baseLayer = base
			}
			require.Equal(t, baseLayer, base, "every architecture shares the first layer")

			files := readTar(t, "the image's file system", mutate.Extract(img))
			require.Contains(t, string(files["/etc/passwd"].data), fmt.Sprintf("edgelink:x:%d:%d:", release.ImageUID, release.ImageGID))
			require.Contains(t, string(files["/etc/group"].data), fmt.Sprintf("edgelink:x:%d:", release.ImageGID))
			work := files[release.ImageWorkDir]
			require.Equal(t, byte(tar.TypeDir), work.hdr.Typeflag)
			require.Equal(t, release.ImageUID, work.hdr.Uid, "the user cannot write its working directory")
			require.Equal(t, int64(0o1777), files["/tmp"].hdr.Mode&0o7777)
			bin := files[release.ImageBinary]
			require.Equal(t, int64(0o755), bin.hdr.Mode&0o777)
			sum := sha256.Sum256(bin.data)
			require.Equal(t, d.Sums[release.BinaryName(d.Version, a)], hex.EncodeToString(sum[:]), "the image's binary is not the release's")
			for name, e := range files {
				require.True(t, e.hdr.ModTime.Equal(s.epoch), "%s: its time is not the commit's", name)
			}

			if a.Name == host.Name {
				exe := filepath.Join(t.TempDir(), "edgelink")
				require.NoError(t, os.WriteFile(exe, bin.data, 0o755))
				out, err := exec.CommandContext(t.Context(), exe, "version").CombinedOutput()
				require.NoError(t, err, "%s", out)
				require.True(t, strings.HasPrefix(string(out), "edgelink "+d.Version+"\n"), "%s", out)
				require.Contains(t, string(out), "commit    "+s.commit)
			}
		})
	}
}

// TestReproducible builds this machine's architecture again from a copy of
// the tree at another path, into another directory, and compares: the
// binary, the .deb and the image must be the same bytes as in dist.
func TestReproducible(t *testing.T) {
	d := dist(t)
	s := releaseStamp(t, d)
	host, err := release.HostArch()
	require.NoError(t, err)
	if _, err := exec.LookPath("git"); err != nil {
		skipOrFail(t, "git not found: the tree to copy is what git ls-files lists")
	}
	// A snapshot of the tree, at another path: the second build, if one is
	// needed, copies the snapshot, not the work tree, which may change.
	files := treeFiles(t)
	snapshot := filepath.Join(t.TempDir(), "a")
	copyTree(t, repo, files, snapshot)

	build := func(tree string) *release.Dist {
		t.Helper()
		out := filepath.Join(t.TempDir(), "dist-"+filepath.Base(tree))
		cmd := exec.CommandContext(t.Context(), "scripts/release")
		cmd.Dir = tree
		cmd.Env = append(os.Environ(), "VERSION="+s.version, "COMMIT="+s.commit,
			"SOURCE_DATE_EPOCH="+strconv.FormatInt(s.epoch.Unix(), 10), "ARCHES="+host.Name, "DIST="+out)
		log, err := cmd.CombinedOutput()
		require.NoError(t, err, "scripts/release in %s:\n%s", tree, log)
		again, err := release.ReadDist(out)
		require.NoError(t, err)
		require.Len(t, again.Sums, 3, "a binary, a .deb and an image")
		bin, err := os.ReadFile(again.Path(release.BinaryName(s.version, host)))
		require.NoError(t, err)
		require.False(t, bytes.Contains(bin, []byte(tree)), "the binary holds the path it was built in")
		return again
	}
	// The image of one architecture is another index than the release's,
	// so the files compared are the binary and the .deb, and then the image
	// for this architecture inside each index.
	artifacts := func(d *release.Dist) map[string]string {
		return map[string]string{
			release.BinaryName(d.Version, host):   d.Sums[release.BinaryName(d.Version, host)],
			release.DebName(d.Version, host):      d.Sums[release.DebName(d.Version, host)],
			"image for " + host.Platform.String(): platformImage(t, d, host, s.epoch).String(),
		}
	}
	want := artifacts(d)
	got := artifacts(build(snapshot))
	if equalSums(want, got) {
		return
	}
	// Either the build is not reproducible, or the tree changed since make
	// release: a second build from a copy of the snapshot tells which.
	other := filepath.Join(t.TempDir(), "b")
	copyTree(t, snapshot, files, other)
	second := artifacts(build(other))
	if equalSums(got, second) {
		t.Fatalf("the tree changed since make release: two builds of it agree with each other (%v) but not with dist (%v); run make release-test again", got, want)
	}
	t.Fatalf("not reproducible: dist %v, a copy of the tree %v, another copy %v", want, got, second)
}

// platformImage is the digest of the image for a in the release's index.
func platformImage(t *testing.T, d *release.Dist, a release.Arch, epoch time.Time) v1.Hash {
	t.Helper()
	dir := unpackOCI(t, d.Path(release.ImageName(d.Version)), epoch)
	top, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	tm, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, tm.Manifests, 1)
	idx, err := top.ImageIndex(tm.Manifests[0].Digest)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.Equals(a.Platform) {
			return m.Digest
		}
	}
	t.Fatalf("%s has no image for %s", d.Path(release.ImageName(d.Version)), a.Platform.String())
	return v1.Hash{}
}

func equalSums(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// treeFiles lists the files of the work tree that git tracks or would track.
func treeFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err, "git ls-files")
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	require.NotEmpty(t, files)
	return files
}

// copyTree copies files (paths relative to src) from src to dst.
func copyTree(t *testing.T, src string, files []string, dst string) {
	t.Helper()
	for _, f := range files {
		from := filepath.Join(src, f)
		st, err := os.Lstat(from)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the work tree
		}
		require.NoError(t, err)
		if !st.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(from)
		require.NoError(t, err)
		p := filepath.Join(dst, f)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, data, st.Mode().Perm()))
	}
}
