// hello is Cove's bundled example app: a tiny HTTP server that reports which
// release answered, honours PORT and stops gracefully on SIGTERM.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	// "hello fetch URL" lets tests probe the network from inside an instance.
	if len(os.Args) == 3 && os.Args[1] == "fetch" {
		os.Exit(fetch(os.Args[2]))
	}
	// "hello whoami" prints what the process may do: its ids, capabilities and whether
	// its root filesystem takes writes (tests read it from inside real containers).
	if len(os.Args) == 2 && os.Args[1] == "whoami" {
		os.Exit(whoami())
	}
	// EXIT_AT_START=N plays an app that dies while starting (a missing setting, say).
	if code := os.Getenv("EXIT_AT_START"); code != "" {
		log.Printf("cannot start: EXIT_AT_START=%s is set", code)
		time.Sleep(time.Second)
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "hello"
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if os.Getenv("FAIL_HEALTH") != "" {
			http.Error(w, "unhealthy on purpose", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/crash" && os.Getenv("ALLOW_CRASH") != "" {
			log.Printf("crashing on request")
			os.Exit(3)
		}
		log.Printf("%s %s", r.Method, r.URL.Path)
		fmt.Fprintf(w, "%s from %s release=%s instance=%s\n",
			greeting, os.Getenv("APP_NAME"), os.Getenv("COVE_RELEASE"), host)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	go func() {
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		log.Printf("SIGTERM received, draining")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on :%s", port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	log.Printf("stopped")
}

func fetch(url string) int {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s", resp.StatusCode, body)
	return 0
}

func whoami() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for _, line := range strings.Split(string(status), "\n") {
		for _, key := range []string{"Uid:", "Gid:", "CapEff:", "CapPrm:", "NoNewPrivs:", "Seccomp:"} {
			if strings.HasPrefix(line, key) {
				fmt.Println(strings.Join(strings.Fields(line), " "))
			}
		}
	}
	if f, err := os.Create("/written-by-hello"); err != nil {
		fmt.Println("root filesystem: read-only")
	} else {
		f.Close()
		fmt.Println("root filesystem: writable")
	}
	return 0
}
