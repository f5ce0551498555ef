package main

// cmdCollect is replaced when its implementation lands.
var cmdCollect = pending("collect")
