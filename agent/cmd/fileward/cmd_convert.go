package main

// cmdConvert is replaced when its implementation lands.
var cmdConvert = pending("convert")
