module github.com/gracefork/gracefork

go 1.26.0

require (
	github.com/cloudflare/tableflip v1.2.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.49.0
)
