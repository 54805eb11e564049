//! tcprules: the rules text syntax and its cdb encoding, as ucspi-tcp writes and reads them.
