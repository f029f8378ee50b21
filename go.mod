module github.com/gracefork/gracefork

go 1.26.0

require (
	github.com/cloudflare/tableflip v1.2.3 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
