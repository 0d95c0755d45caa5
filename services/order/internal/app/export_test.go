package app

// DecodeReply is decodeReply, for the fuzz tests.
var DecodeReply = decodeReply
