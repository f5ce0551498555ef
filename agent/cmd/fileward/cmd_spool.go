package main

// cmdSpool is replaced when its implementation lands.
var cmdSpool = pending("spool")
