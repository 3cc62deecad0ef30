/*
 * A browser softphone for edgeport's end-to-end tests: the real JsSIP (the
 * SIP stack of many WebRTC phones) under Node, over a WebSocket from the `ws`
 * package. JsSIP writes its messages as it does in a browser: a random
 * `.invalid` Via host and Contact host (RFC 7118), `;transport=ws;ob`
 * Contacts, and it drops a response whose Via sent-by is not its own.
 *
 * Node has no WebRTC, so the media engine is a stand-in: an RTCPeerConnection
 * that accepts any offer and answers with a fixed SDP, ICE already complete.
 * Everything on the SIP side is JsSIP's own.
 *
 * It registers as SIP_URI over WS_URL and answers every incoming call
 * (JsSIP sends 180 Ringing by itself). With CALL_TARGET set it also calls
 * that URI once registered and hangs up when the call is confirmed.
 *
 * One line of JSON per event on stdout: {"event": ..., ...}.
 * Environment: WS_URL, SIP_URI, CALL_TARGET (optional).
 */
"use strict"

const WebSocket = require("ws")

const print = (event, extra = {}) => console.log(JSON.stringify({ event, ...extra }))

const ANSWER_SDP = [
  "v=0",
  "o=- 4611731400430051337 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 0",
  "c=IN IP4 0.0.0.0",
  "a=rtpmap:0 PCMU/8000",
  "a=inactive",
  ""
].join("\r\n")

// The stand-in media engine: what JsSIP's RTCSession calls, nothing more.
class StandInPeerConnection {
  constructor() {
    this.iceGatheringState = "complete"
    this.iceConnectionState = "new"
    this.signalingState = "stable"
    this.localDescription = null
    this.remoteDescription = null
  }
  addEventListener() {}
  removeEventListener() {}
  async createOffer() {
    return { type: "offer", sdp: ANSWER_SDP }
  }
  async createAnswer() {
    return { type: "answer", sdp: ANSWER_SDP }
  }
  async setLocalDescription(description) {
    this.localDescription = description
  }
  async setRemoteDescription(description) {
    this.remoteDescription = description
  }
  getSenders() {
    return []
  }
  getReceivers() {
    return []
  }
  getLocalStreams() {
    return []
  }
  getRemoteStreams() {
    return []
  }
  addTrack() {}
  close() {}
}

globalThis.window = globalThis
globalThis.WebSocket = WebSocket
globalThis.RTCPeerConnection = StandInPeerConnection
globalThis.RTCSessionDescription = class {
  constructor(init) {
    this.type = init.type
    this.sdp = init.sdp
  }
}

const JsSIP = require("jssip")

const socket = new JsSIP.WebSocketInterface(process.env.WS_URL)
const ua = new JsSIP.UA({
  sockets: [socket],
  uri: process.env.SIP_URI,
  register: true,
  register_expires: 600,
  session_timers: false,
  connection_recovery_min_interval: 2,
  connection_recovery_max_interval: 4
})
const noMedia = { mediaConstraints: { audio: false, video: false } }

ua.on("connected", () => print("connected"))
ua.on("disconnected", () => print("disconnected"))
ua.on("registered", (e) =>
  print("registered", { status: e.response.status_code, via: e.response.getHeader("Via") })
)
ua.on("registrationFailed", (e) => print("registrationFailed", { cause: e.cause }))
ua.on("sipEvent", () => {})
ua.on("newRTCSession", ({ session, originator, request }) => {
  const callId = request.call_id
  print("newRTCSession", { originator, callId })
  session.on("progress", (e) => print("progress", { callId, status: e.response && e.response.status_code }))
  session.on("accepted", () => print("accepted", { callId }))
  session.on("confirmed", () => {
    print("confirmed", { callId })
    if (originator === "local") {
      session.terminate()
    }
  })
  session.on("ended", (e) => print("ended", { callId, originator: e.originator, cause: e.cause }))
  session.on("failed", (e) => print("failed", { callId, originator: e.originator, cause: e.cause }))
  if (originator === "remote") {
    session.answer(noMedia)
  }
})

let called = false
ua.on("registered", () => {
  if (process.env.CALL_TARGET && !called) {
    called = true
    ua.call(process.env.CALL_TARGET, noMedia)
  }
})

print("starting", { viaHost: ua.configuration.via_host, contact: ua.contact.toString() })
ua.start()

const stop = () => {
  ua.stop()
  setTimeout(() => process.exit(0), 500)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
