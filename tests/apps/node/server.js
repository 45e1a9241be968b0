// An Express example app for the Node.js buildpack.
const express = require("express");
const { version } = require("express/package.json");

const MESSAGE = "node says hi";
const app = express();

app.get("/", (req, res) => {
  res.type("text/plain").send(`${MESSAGE} (express ${version}, ${process.env.COVE_RELEASE})\n`);
});

const server = app.listen(Number(process.env.PORT || 8000), () => console.log("serving"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
