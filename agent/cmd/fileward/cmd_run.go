package main

// cmdRun is replaced when its implementation lands.
var cmdRun = pending("run")
