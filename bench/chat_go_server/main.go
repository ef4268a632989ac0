// chat_go_server: the live comment server a Go team would write on
// gorilla/websocket, built the way gorilla's chat example is (one hub
// goroutine that owns every room and every send, one reader and one writer
// goroutine per client, a buffered send channel per client), batching the
// way galarelay does. A peer of bench/chat_bench.sh, speaking the same
// /chat/CHANNEL protocol as galarelay (hello → welcome, comment → ack,
// comments delivered as {"type":"batch","events":[…]} with galarelay's event
// shape: {type, id, user: {id, name, role}, text, ts}).
//
// Batching: the hub collects the comments a room accepts during one 50 ms
// tick, encodes the batch once (one json.Marshal) into one
// websocket.PreparedMessage (gorilla frames it once per compression mode,
// not once per client) and hands that same message to every member's send
// channel. The poster's ack is queued when the hub accepts the comment,
// before the tick that delivers it, as galarelay acks once a comment is
// stored. No archive, no moderation, no limits.
//
// Queues and drop policies: the hub's inbox holds inboxSize requests (a
// reader blocks when it is full: backpressure on that client's socket);
// a room's comments of one tick are at most maxPending (beyond: refused
// with rate_limited); a client's send channel holds sendSize messages and
// a client whose channel is full is dropped (its channel closed, its
// connection closed), gorilla's policy.
//
// Built offline against Debian's golang-github-gorilla-websocket-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE=$(mktemp -d) \
//	  go build -o chat_go_server bench/chat_go_server/main.go
//	./chat_go_server PORT [TICK_MS]
//
// Prints "listening PORT" once it accepts connections.
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	inboxSize  = 4096
	sendSize   = 256
	maxPending = 10000
	maxMessage = 4096
	writeWait  = 10 * time.Second
	pingPeriod = 54 * time.Second
)

type user struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Role string `json:"role"`
}

type event struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	User user   `json:"user"`
	Text string `json:"text"`
	TS   int64  `json:"ts"`
}

type batch struct {
	Type   string  `json:"type"`
	Events []event `json:"events"`
}

// outMsg is one queued message: a batch shared by every member, or a reply
// of this client's own.
type outMsg struct {
	prepared *websocket.PreparedMessage
	data     []byte
}

type client struct {
	hub  *hub
	conn *websocket.Conn
	room string
	user user // owned by the hub goroutine
	send chan outMsg
}

type request struct {
	c     *client
	kind  string // "register", "unregister", "hello", "comment", "bad"
	name  string
	text  string
	nonce string
}

type room struct {
	members map[*client]bool
	pending []event
}

type hub struct {
	inbox    chan request
	rooms    map[string]*room
	tick     time.Duration
	nextID   int64
	nextUser int64
}

func (h *hub) reply(c *client, v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.queue(c, outMsg{data: b})
}

// queue hands a message to a client; a client that is sendSize behind is
// dropped, as in gorilla's chat example.
func (h *hub) queue(c *client, m outMsg) {
	r := h.rooms[c.room]
	if r == nil || !r.members[c] {
		return
	}
	select {
	case c.send <- m:
	default:
		delete(r.members, c)
		close(c.send)
	}
}

func (h *hub) welcome(c *client) {
	h.reply(c, map[string]interface{}{
		"type": "welcome", "user": c.user,
		"state":   map[string]interface{}{"slow": 0, "hold": false, "pinned": nil},
		"history": []event{},
	})
}

func (h *hub) errorReply(c *client, nonce, code, message string) {
	h.reply(c, map[string]string{"type": "error", "nonce": nonce, "code": code, "message": message})
}

func (h *hub) run() {
	ticker := time.NewTicker(h.tick)
	defer ticker.Stop()
	for {
		select {
		case rq := <-h.inbox:
			h.handle(rq)
		case <-ticker.C:
			h.flush()
		}
	}
}

func (h *hub) handle(rq request) {
	c := rq.c
	switch rq.kind {
	case "register":
		r := h.rooms[c.room]
		if r == nil {
			r = &room{members: map[*client]bool{}}
			h.rooms[c.room] = r
		}
		h.nextUser++
		c.user = user{ID: "u" + strconv.FormatInt(h.nextUser, 10), Role: "viewer"}
		r.members[c] = true
		h.welcome(c)
	case "unregister":
		if r := h.rooms[c.room]; r != nil && r.members[c] {
			delete(r.members, c)
			close(c.send)
		}
	case "hello":
		c.user.Name = rq.name
		h.welcome(c)
	case "comment":
		r := h.rooms[c.room]
		if r == nil || !r.members[c] {
			return
		}
		if c.user.Name == "" || rq.text == "" {
			code := "empty"
			if c.user.Name == "" {
				code = "forbidden"
			}
			h.errorReply(c, rq.nonce, code, "no")
			return
		}
		if len(r.pending) >= maxPending {
			h.errorReply(c, rq.nonce, "rate_limited", "busy")
			return
		}
		h.nextID++
		id := strconv.FormatInt(h.nextID, 10)
		r.pending = append(r.pending, event{Type: "comment", ID: id, User: c.user, Text: rq.text,
			TS: time.Now().UnixMilli()})
		h.reply(c, map[string]string{"type": "ack", "nonce": rq.nonce, "id": id})
	default:
		h.errorReply(c, rq.nonce, "bad_request", "not a JSON object")
	}
}

// flush: each room's comments of this tick, encoded once, to every member.
func (h *hub) flush() {
	for _, r := range h.rooms {
		if len(r.pending) == 0 {
			continue
		}
		b, err := json.Marshal(batch{Type: "batch", Events: r.pending})
		r.pending = r.pending[:0]
		if err != nil {
			continue
		}
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
		if err != nil {
			continue
		}
		for c := range r.members {
			select {
			case c.send <- outMsg{prepared: pm}:
			default:
				delete(r.members, c)
				close(c.send)
			}
		}
	}
}

func (c *client) readPump() {
	defer func() {
		c.hub.inbox <- request{c: c, kind: "unregister"}
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessage)
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		var msg struct {
			Type  string `json:"type"`
			Name  string `json:"name"`
			Text  string `json:"text"`
			Nonce string `json:"nonce"`
		}
		rq := request{c: c, kind: "bad"}
		if mt == websocket.TextMessage && json.Unmarshal(data, &msg) == nil {
			rq.nonce = msg.Nonce
			switch msg.Type {
			case "hello":
				rq.kind, rq.name = "hello", msg.Name
				if len(rq.name) > 32 {
					rq.name = rq.name[:32]
				}
			case "comment":
				rq.kind, rq.text = "comment", msg.Text
			}
		}
		c.hub.inbox <- rq
	}
}

func (c *client) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case m, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			var err error
			if m.prepared != nil {
				err = c.conn.WritePreparedMessage(m.prepared)
			} else {
				err = c.conn.WriteMessage(websocket.TextMessage, m.data)
			}
			if err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

var chatPath = regexp.MustCompile(`^/chat/([a-z0-9_-]{1,31})$`)

func main() {
	port := 8090
	if len(os.Args) > 1 {
		port, _ = strconv.Atoi(os.Args[1])
	}
	tick := 50 * time.Millisecond
	if len(os.Args) > 2 {
		ms, _ := strconv.Atoi(os.Args[2])
		tick = time.Duration(ms) * time.Millisecond
	}
	h := &hub{inbox: make(chan request, inboxSize), rooms: map[string]*room{}, tick: tick}
	go h.run()

	upgrader := websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
		// idle clients hold no write buffer (gorilla's advice for many connections)
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		m := chatPath.FindStringSubmatch(r.URL.Path)
		if m == nil {
			http.Error(w, "no such channel", http.StatusNotFound)
			return
		}
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &client{hub: h, conn: conn, room: m[1], send: make(chan outMsg, sendSize)}
		h.inbox <- request{c: c, kind: "register"}
		go c.writePump()
		go c.readPump()
	})

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %d\n", port)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; os.Exit(0) }()
	log.Fatal(http.Serve(ln, nil))
}
