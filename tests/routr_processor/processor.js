/*
 * A small Routr processor for edgeport's end-to-end tests, on Routr's own
 * processor library (@routr/processor). It decides the way Routr's connect
 * processor and location service do, with the library's helpers:
 *
 * - REGISTER: the route is stored as Routr's location service builds it
 *   (host = received || host, port = rPort != -1 ? rPort : port, transport
 *   from the top Via), and the answer is 200 with the request's Contact (what
 *   later versions of the library's sendRegisterOk send; 2.1.7, the one on
 *   npm, lacks it).
 * - A new request whose To (or, for a number, whose table entry) names a
 *   registered AOR goes to that route, through the alterations connect
 *   applies to it (its "tailor" pipeline).
 * - A number in NUMBERS is a trunk's DID: before routing, the trunk's ACL is
 *   checked on request.sender.host with the library's IpUtils, as connect's
 *   access check does; a source outside it gets 401 without a challenge.
 * - ACK and BYE: connect's in-dialog alterations for this library version
 *   (the EdgePort's Via from the Route headers, its own Routes removed).
 *   Responses: the top Via goes.
 *
 * Environment: BIND_ADDR (host:port), NUMBERS (JSON: number -> {aor, acl}).
 * One line of JSON per message on stdout: method, type, sender, top Via.
 */
"use strict"

const Processor = require("@routr/processor").default
const { Alterations: A, Helper: H, Target: T } = require("@routr/processor")
const { CommonResponse: CR, CommonTypes: CT, IpUtils } = require("@routr/common")

const bindAddr = process.env.BIND_ADDR || "127.0.0.1:51904"
const numbers = JSON.parse(process.env.NUMBERS || "{}")
const routes = new Map() // AOR -> route

const pipe = (value, ...steps) => steps.reduce((acc, step) => step(acc), value)

const reply = (responseType, reasonPhrase, extra = {}) => ({
  message: { responseType, reasonPhrase, ...extra }
})

function routeFromRegister(request) {
  const via = request.message.via[0]
  return {
    edgePortRef: request.edgePortRef,
    user: request.message.from.address.uri.user,
    host: via.received || via.host,
    port: via.rPort !== -1 ? via.rPort : via.port,
    transport: via.transport.toUpperCase(),
    advertisedHost: via.host,
    advertisedPort: via.port,
    listeningPoints: request.listeningPoints,
    localnets: request.localnets,
    externalAddrs: request.externalAddrs
  }
}

// connect's alterations for a request it routes to an endpoint.
const tailor = (route, request) =>
  pipe(
    request,
    A.decreaseMaxForwards,
    A.removeAuthorization,
    A.removeSelfRoutes,
    A.removeXEdgePortRef,
    A.fixInvalidContact,
    A.fixRequestURI(route),
    A.addSelfVia(route),
    A.applyXHeaders(route),
    A.addSelfRecordRoute(route),
    A.addRouteToNextHop(route)
  )

function routeRequest(request, res) {
  const calleeUser = request.message.requestUri.user
  const number = numbers[calleeUser]
  let aor = T.getTargetAOR(request)
  if (number) {
    const allowed = number.acl.some((net) => IpUtils.hasIp(net, request.sender.host))
    if (!allowed) {
      return res.send(CR.createUnauthorizedResponseWithoutChallenge())
    }
    aor = number.aor
  }
  const route = routes.get(aor)
  if (!route) {
    return res.send(reply(CT.ResponseType.TEMPORARILY_UNAVAILABLE, "Temporarily Unavailable"))
  }
  res.send(tailor(route, request))
}

new Processor({ bindAddr, name: "edgeport-test" }).listen((request, res) => {
  const via = request.message.via[0] || {}
  console.log(
    JSON.stringify({
      method: request.method,
      type: H.isTypeResponse(request) ? "response" : "request",
      sender: request.sender,
      via: { host: via.host, port: via.port, received: via.received, rPort: via.rPort }
    })
  )
  try {
    if (H.isTypeResponse(request)) {
      return res.send(A.removeTopVia(request))
    }
    switch (request.method) {
      case CT.Method.REGISTER:
        routes.set(T.getTargetAOR(request), routeFromRegister(request))
        return res.send(reply(CT.ResponseType.OK, "OK", { contact: request.message.contact }))
      case CT.Method.ACK:
      case CT.Method.BYE:
        return res.send(
          pipe(
            request,
            A.decreaseMaxForwards,
            A.addSelfViaUsingTheRouteHeaders,
            A.removeSelfRoutes
          )
        )
      default:
        return routeRequest(request, res)
    }
  } catch (error) {
    console.error(String(error && error.stack ? error.stack : error))
    res.sendInternalServerError()
  }
})
