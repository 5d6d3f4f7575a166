"""How we run on the interpreter and the frameworks: heap settling, socket writes,
Twisted and Autobahn internals."""
