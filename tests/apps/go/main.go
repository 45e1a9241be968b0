// A Go net/http example app for the Go buildpack.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"
)

const message = "go says hi"

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s (%s, %s)\n", message, runtime.Version(), os.Getenv("COVE_RELEASE"))
	})
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	log.Printf("serving on :%s", port)
	log.Fatal(http.ListenAndServe(":"+port, nil))
}
