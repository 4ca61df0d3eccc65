package observe

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"time"

	"github.com/edgelink/edgelink/internal/status"
)

// web holds the pages: the agent's status page (index.html) and the fleet
// page (fleet.html), server-rendered templates sharing the sign-in form
// (login.html), and the scripts and style sheets they load.
//
//go:embed web
var web embed.FS

var pageTemplate = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"count":    FormatCount,
	"bytes":    FormatBytes,
	"seconds":  FormatSeconds,
	"rate":     func(v float64) string { return FormatCount(int64(math.Round(v))) + "/s" },
	"rfc3339":  func(t time.Time) string { return t.Format(time.RFC3339) },
	"clock":    func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stateTag": func(s string) string { return "state-" + s },
}).ParseFS(web, "web/index.html", "web/login.html"))

// pageAuth is what the sign-in form of a page renders.
type pageAuth struct {
	// Authorized is false when a token is required and the request has
	// none; the page then renders no data and asks for the token.
	Authorized    bool
	TokenRequired bool
	// Who names what requires the token: "agent", "fleet service".
	Who string
}

// pageData is what the status page template renders.
type pageData struct {
	pageAuth
	Status status.Snapshot
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	d := pageData{pageAuth: pageAuth{Authorized: s.authorized(r), TokenRequired: s.TokenRequired(), Who: "agent"}}
	if d.Authorized {
		d.Status = s.Snapshot()
	} else {
		d.Status = status.Snapshot{Version: s.model.Version()}
	}
	s.writePage(w, pageTemplate, d)
}

// staticHandler serves the page's script and style sheet.
func staticHandler() http.Handler {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(fmt.Sprintf("embedded web files: %v", err)) // cannot happen: the directory is embedded
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	})
}

// FormatCount writes n with thousands separators: 1,234,567. It, FormatBytes
// and FormatSeconds are the status page's formats, for other views of the
// status.
func FormatCount(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// FormatBytes writes n in binary units: 512 B, 1.5 KiB, 3.2 MiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	for v /= unit; v >= unit && i < len(units)-1; i++ {
		v /= unit
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// FormatSeconds writes a duration in seconds compactly: 850ms, 12.3s,
// 4m05s, 2h10m, 3d4h.
func FormatSeconds(sec float64) string {
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
