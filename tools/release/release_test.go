package release

import (
	"os"
	"os/exec"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v1.2.3-4-gabcdef0", "1.2.3+4.gabcdef0"},
		{"v1.2.3-4-gabcdef0-dirty", "1.2.3+4.gabcdef0.dirty"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-rc.1-2-g0123456", "1.2.3~rc.1+2.g0123456"},
		{"v0.0.0-20261129233719-fa076d7b7f1f", "0.0.0~20261129233719.fa076d7b7f1f"},
		{"v0.0.0-20261129233719-fa076d7b7f1f-dirty", "0.0.0~20261129233719.fa076d7b7f1f+dirty"},
	} {
		got, err := DebVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("DebVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"fa076d7", "", "v", "release 1"} {
		if got, err := DebVersion(bad); err == nil {
			t.Errorf("DebVersion(%q) = %q, want an error", bad, got)
		}
	}
}

// TestDebVersionOrder checks with dpkg itself that the versions sort as
// releases do (a dirty tree sorts after its commit).
func TestDebVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		if os.Getenv("EDGELINK_RELEASE") == "required" {
			t.Fatal("dpkg not found (EDGELINK_RELEASE=required)")
		}
		t.Skip("dpkg not found")
	}
	order := []string{
		"v0.0.0-20261129233719-fa076d7b7f1f",
		"v1.2.3-rc.1",
		"v1.2.3-rc.1-2-g0123456",
		"v1.2.3",
		"v1.2.3-4-gabcdef0",
		"v1.2.3-4-gabcdef0-dirty",
		"v1.2.4-rc.1",
	}
	pairs := [][2]string{{"v1.2.3", "v1.2.3-dirty"}}
	for i := 1; i < len(order); i++ {
		pairs = append(pairs, [2]string{order[i-1], order[i]})
	}
	for _, p := range pairs {
		lo, err := DebVersion(p[0])
		if err != nil {
			t.Fatal(err)
		}
		hi, err := DebVersion(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := exec.Command("dpkg", "--compare-versions", lo, "lt", hi).Run(); err != nil {
			t.Errorf("dpkg says not %s (%s) < %s (%s): %v", lo, p[0], hi, p[1], err)
		}
	}
}

func TestNames(t *testing.T) {
	a, err := ArchNamed("armv7")
	if err != nil {
		t.Fatal(err)
	}
	if got := BinaryName("v1.2.3", a); got != "edgelink_v1.2.3_linux_armv7" {
		t.Errorf("BinaryName = %q", got)
	}
	if got := DebName("v1.2.3", a); got != "edgelink_v1.2.3_linux_armv7.deb" {
		t.Errorf("DebName = %q", got)
	}
	if got := ImageName("v1.2.3"); got != "edgelink_v1.2.3_oci.tar" {
		t.Errorf("ImageName = %q", got)
	}
	if _, err := ArchNamed("386"); err == nil {
		t.Error("ArchNamed(386): want an error")
	}
}
