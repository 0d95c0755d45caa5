package app

// Decode is decode, for the fuzz tests.
var Decode = decode
