package main

import (
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

// newGin builds the routes on a gin engine, whose path parameters are
// written :name and read with Context.Param.
//
// The engine runs in release mode unless GIN_MODE says otherwise (debug
// mode prints every route and warnings on stdout), and without
// gin.Logger, which would print every request on stdout: the
// -access-logfile flag logs requests for every router alike. It trusts
// no proxy's X-Forwarded-For; set trusted proxies for a deployment
// behind one.
func newGin(pid int) http.Handler {
	if os.Getenv(gin.EnvGinMode) == "" {
		gin.SetMode(gin.ReleaseMode)
	}
	e := gin.New()
	e.Use(gin.Recovery())
	if err := e.SetTrustedProxies(nil); err != nil {
		panic(err) // nil is always valid
	}
	e.GET("/", func(c *gin.Context) {
		c.String(http.StatusOK, "%s", index("gin", pid))
	})
	e.GET("/hello/:name", func(c *gin.Context) {
		c.String(http.StatusOK, "%s", hello("gin", c.Param("name"), pid))
	})
	return e
}
