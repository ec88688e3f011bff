package progress

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseInstallerLine(t *testing.T) {
	for _, c := range []struct {
		line string
		want installerLine
	}{
		// uv
		{"Resolved 45 packages in 1.23s", installerLine{Kind: packageCount, Count: 45}},
		{" Downloading torch (846.9MiB)", installerLine{Kind: downloadStart, Name: "torch", Bytes: 888039014}},
		{" Downloading nvidia-cudnn-cu12 (1.0GiB)", installerLine{Kind: downloadStart, Name: "nvidia-cudnn-cu12", Bytes: 1 << 30}},
		{" Downloaded torch", installerLine{Kind: downloadDone, Name: "torch"}},
		{"Prepared 45 packages in 1m 02s", installerLine{Kind: packageCount, Count: 45}},
		{"Installed 45 packages in 1.20s", installerLine{Kind: packageCount, Count: 45}},
		{"Installed 1 package in 3ms", installerLine{Kind: packageCount, Count: 1}},
		{" + torch==2.5.1", installerLine{Kind: onePackage, Name: "torch==2.5.1"}},
		{" - torch==2.4.0", installerLine{}},
		// pip
		{"Collecting torch", installerLine{Kind: onePackage, Name: "torch"}},
		{"Collecting onnx>=1.16 (from -r requirements.txt (line 2))", installerLine{Kind: onePackage, Name: "onnx>=1.16"}},
		{"Requirement already satisfied: numpy in ./venv/lib/python3.12/site-packages (2.1.0)", installerLine{Kind: onePackage, Name: "numpy"}},
		{"  Downloading torch-2.5.1-cp312-cp312-manylinux1_x86_64.whl (906.4 MB)", installerLine{Kind: downloaded, Name: "torch-2.5.1-cp312-cp312-manylinux1_x86_64.whl", Bytes: 906400000}},
		{"  Downloading numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.whl.metadata (60 kB)", installerLine{Kind: downloaded, Name: "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.whl.metadata", Bytes: 60000}},
		{"  Downloading https://files.example/onnx-1.17.0.tar.gz (12.2 MB)", installerLine{Kind: downloaded, Name: "https://files.example/onnx-1.17.0.tar.gz", Bytes: 12200000}},
		{"  Using cached torch-2.5.1-cp312-cp312-manylinux1_x86_64.whl (906.4 MB)", installerLine{}},
		{"Installing collected packages: mpmath, sympy, torch", installerLine{Kind: packageCount, Count: 3}},
		{"Successfully installed mpmath-1.3.0 sympy-1.13.1 torch-2.5.1", installerLine{Kind: packageCount, Count: 3}},
		// either
		{"", installerLine{}},
		{"\x1b[1mDownloading\x1b[0m torch (846.9MiB)", installerLine{Kind: downloadStart, Name: "torch", Bytes: 888039014}},
		{"   ━━━━━━━━━━ 100.0/906.4 MB 50.2 MB/s\r   ━━━━━━━━━━ 906.4/906.4 MB 50.2 MB/s", installerLine{}},
	} {
		got := parseInstallerLine(c.line)
		got.Text = "" // checked below
		if got != c.want {
			t.Errorf("parseInstallerLine(%q) = %+v, want %+v", c.line, got, c.want)
		}
	}
	if got := parseInstallerLine("\x1b[2m Downloaded\x1b[0m torch \r\n").Text; got != "Downloaded torch" {
		t.Errorf("Text = %q, want the line trimmed, without escapes", got)
	}
}

func TestInstallerState(t *testing.T) {
	feed := func(lines ...string) installerState {
		var s installerState
		for _, l := range lines {
			s.apply(parseInstallerLine(l))
		}
		return s
	}
	for _, c := range []struct {
		name     string
		st       installerState
		packages int
		bytes    int64
		latest   string
	}{
		{"uv, a download under way is not counted yet", feed(
			"Resolved 3 packages in 10ms", " Downloading torch (846.9MiB)", " Downloading numpy (15.5MiB)", " Downloaded numpy"),
			3, 16252928, "Downloaded numpy"},
		{"uv, all done", feed(
			"Resolved 3 packages in 10ms", " Downloading torch (846.9MiB)", " Downloaded torch",
			"Prepared 2 packages in 9.80s", "Installed 3 packages in 1.20s", " + filelock==3.16.1", " + numpy==2.1.0", " + torch==2.5.1"),
			3, 888039014, "+ torch==2.5.1"},
		{"uv, end of a download not printed", feed(
			" Downloading torch (846.9MiB)", "Prepared 1 package in 9.80s"),
			1, 888039014, "Prepared 1 package in 9.80s"},
		{"pip", feed(
			"Collecting torch", "  Downloading torch-2.5.1-cp312-cp312-manylinux1_x86_64.whl (906.4 MB)",
			"Collecting numpy", "  Using cached numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.whl (16.0 MB)",
			"Requirement already satisfied: filelock in ./venv/lib/python3.12/site-packages (3.16.1)",
			"Installing collected packages: numpy, torch", ""),
			3, 906400000, "Installing collected packages: numpy, torch"},
	} {
		if c.st.packages() != c.packages || c.st.bytes != c.bytes || c.st.latest != c.latest {
			t.Errorf("%s: %d packages, %d bytes, latest %q; want %d, %d, %q",
				c.name, c.st.packages(), c.st.bytes, c.st.latest, c.packages, c.bytes, c.latest)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 888039014: "846.9 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestProvisioningTerminal(t *testing.T) {
	s := openScreen(t, 120, 24)
	p := NewProvisioning(s.tty, Options{})
	p.Line("Resolved 45 packages in 1.23s")
	p.Line(" Downloading torch (846.9MiB)")
	s.waitFor(t, "Provisioning virtualenv: 45 packages, 0 B downloaded — Downloading torch (846.9MiB)")
	fmt.Fprintln(p.Writer(), "level=info msg=\"creating virtualenv\"")
	p.Line(" Downloaded torch")
	p.Line("Installed 45 packages in 1.20s")
	p.Stop()
	p.Stop()
	fmt.Fprintln(p.Writer(), "after stop")
	out := s.close()

	for _, want := range []string{
		"Provisioning virtualenv: 45 packages, 846.9 MiB downloaded — Installed 45 packages in 1.20s",
		"level=info msg=\"creating virtualenv\"\r\n",
		"after stop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	if !redraw.MatchString(out) {
		t.Errorf("no redraw (cursor up, erase) in the output, not a live display:\n%q", out)
	}
}

// A long installer line is cut to the terminal's width, the counts kept.
func TestProvisioningFitsTheWidth(t *testing.T) {
	const cols = 70
	s := openScreen(t, cols, 24)
	p := NewProvisioning(s.tty, Options{})
	p.Line("  Downloading https://files.pythonhosted.org/packages/aa/bb/torch-2.5.1-cp312-cp312-manylinux1_x86_64.whl (906.4 MB)")
	p.Stop()
	out := s.close()
	if !strings.Contains(out, "Provisioning virtualenv: 0 packages, 864.4 MiB downloaded — Downloa") {
		t.Errorf("status missing:\n%q", out)
	}
	for _, l := range lines(out) {
		if n := utf8.RuneCountInString(l); n > cols {
			t.Errorf("line of %d columns on a %d-column terminal: %q", n, cols, l)
		}
	}
}

func TestProvisioningNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := NewProvisioning(&buf, Options{Color: true})
	p.Line("Collecting torch")
	fmt.Fprintln(p.Writer(), "log line")
	p.Stop()
	if buf.String() != "log line\n" {
		t.Errorf("output = %q, want only the log line", buf.String())
	}
}
