// Package dist holds the tests of a release that make release wrote into
// dist/ (or EDGELINK_DIST): SHA256SUMS, the static binaries, the .debs (and
// one installed with dpkg, its systemd unit verified), the OCI image, and a
// second build from a copy of the tree that must give the same bytes. They
// skip without a release, root or dpkg, unless EDGELINK_RELEASE=required, as
// make release-test sets.
package dist
