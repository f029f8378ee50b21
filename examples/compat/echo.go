package main

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// newEcho builds the routes on an echo instance, whose path parameters
// are written :name and read with Context.Param. The instance is only
// an http.Handler: gracefork's workers serve it, so echo's Start, and
// its banner, are not used.
func newEcho(pid int) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/", func(c echo.Context) error {
		return c.String(http.StatusOK, index("echo", pid))
	})
	e.GET("/hello/:name", func(c echo.Context) error {
		return c.String(http.StatusOK, hello("echo", c.Param("name"), pid))
	})
	return e
}
