package control

// The workers' log files (logs:): POST /v1/logs/reopen, and the lines of
// GET /v1/logs read back from them once the in-memory ring has rolled
// past.

import (
	"context"
	"net/http"
	"time"

	"github.com/paddock-sh/paddock/internal/logfile"
)

// reopenTimeout bounds how long POST /v1/logs/reopen waits for a log
// file's writer blocked in a write.
const reopenTimeout = 10 * time.Second

// fileTimeout bounds how long GET /v1/logs waits for the writers of the
// files it reads to reach its marker; then the ring alone answers.
const fileTimeout = 5 * time.Second

// LogsReopenResponse answers POST /v1/logs/reopen: the files closed and
// opened again.
type LogsReopenResponse struct {
	Files []string `json:"files"`
}

func (s *Server) logsReopen(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), reopenTimeout)
	defer cancel()
	files, err := s.Supervisor.ReopenLogs(ctx)
	if err != nil {
		return err
	}
	if files == nil {
		files = []string{}
	}
	writeJSON(w, http.StatusOK, LogsReopenResponse{Files: files})
	return nil
}

// fileTail returns the last lq.lines lines of the files of lq.app when the
// ring holds fewer of them and the app writes files: every line written
// before the call, and the Seq of the ring's last line at that moment
// (the lines after it are to follow). ok is false when the ring answers
// alone (no file, enough lines in the ring, or the files could not be
// read: logged).
func (s *Server) fileTail(ctx context.Context, lq logsQuery) (lines []LogLine, last uint64, ok bool) {
	files := s.Supervisor.LogFiles()
	if lq.lines == 0 || !files.Has(lq.app) || len(s.Logs.Tail(lq.app, lq.worker, lq.lines)) >= lq.lines {
		return nil, 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, fileTimeout)
	defer cancel()
	hist, err := files.Tail(ctx, lq.app, lq.worker, lq.lines, func() { last = s.Logs.LastSeq() })
	if err != nil {
		s.Logger.Warn("paddock logs: the log files could not be read; the recent lines kept in memory answer", "app", lq.app, "err", err)
		return nil, 0, false
	}
	lines = make([]LogLine, len(hist))
	for i, l := range hist {
		lines[i] = fileLine(l)
	}
	return lines, last, true
}

func fileLine(l logfile.Line) LogLine {
	return LogLine{Time: l.Time, App: l.App, Worker: l.Worker, Stream: l.Stream, Text: l.Text}
}
