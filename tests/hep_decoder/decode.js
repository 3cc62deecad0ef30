// Decodes HEP v3 packets with sipcapture's hep-js for edgeport's tests.
// stdin: one packet per line, hex encoded. stdout: a JSON array, one entry
// per packet: hep-js's decapsulate() result, or null when it cannot read it.
"use strict";
const hep = require("hep-js");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const decoded = input
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const result = hep.decapsulate(Buffer.from(line.trim(), "hex"));
      return result || null;
    });
  process.stdout.write(JSON.stringify(decoded));
});
