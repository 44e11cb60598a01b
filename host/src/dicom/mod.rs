//! DICOM: reading instance headers, the DIMSE server that modalities talk to (C-ECHO, C-STORE
//! into the archive, worklist C-FIND), and the C-STORE client that forwards series.

pub mod completeness;
pub mod dimse;
pub mod header;
pub mod pdu_reader;
pub mod scp;
pub mod scu;
pub mod worklist;
