//! Receiving PDUs straight off an established association's socket. The values of a
//! P-DATA-TF reach the caller as slices of one reusable buffer, as their bytes arrive: no PDU
//! is copied or allocated whole (dicom-ul's `receive` copies each PDU twice, into fresh
//! allocations, which cost a C-STORE SCP more CPU than hashing its data). Every other PDU
//! (release, abort) is parsed by dicom-ul.

use std::io::Cursor;

use bytes::{Buf, BytesMut};
use dicom_ul::pdu::{Pdu, read_pdu};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Type of the P-DATA-TF PDU.
const P_DATA_TF: u8 = 0x04;
/// PDU header: type, reserved, length (4 bytes).
const PDU_HEADER: usize = 6;
/// PDV item header: length (4 bytes), presentation context ID, message control header.
const ITEM_HEADER: usize = 6;
/// Room made in the buffer before each read from the socket.
const READ_ROOM: usize = 64 * 1024;

/// Why the peer's PDUs cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("cannot read from the peer: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("PDU of {length} bytes exceeds the negotiated maximum of {max}")]
    TooLarge { length: u32, max: u32 },
    #[error("malformed P-DATA-TF: {0}")]
    Malformed(&'static str),
    #[error("malformed PDU: {0}")]
    Parse(#[from] dicom_ul::pdu::ReadError),
}

/// What the peer sent next.
#[derive(Debug)]
pub enum Received<'a> {
    /// Bytes of a presentation data value (a fragment of a command or of a data set, or part of
    /// one); `end` on the last bytes of a message's last fragment.
    Value { context_id: u8, command: bool, bytes: &'a [u8], end: bool },
    /// Any PDU other than P-DATA-TF.
    Pdu(Pdu),
}

/// The value being delivered.
#[derive(Debug, Clone, Copy)]
struct Value {
    context_id: u8,
    command: bool,
    last_fragment: bool,
    /// Its bytes still to come.
    left: u32,
}

/// One step parsed out of the buffer (the bytes of a value stay there until the next call).
enum Step {
    Value { context_id: u8, command: bool, len: usize, end: bool },
    Pdu(Pdu),
}

/// Reads the PDUs of one association, after its establishment: a requester sends nothing
/// before it has the A-ASSOCIATE-AC, so dicom-ul's buffer is empty by then.
#[derive(Debug)]
pub struct PduReader {
    buffer: BytesMut,
    max_pdu_length: u32,
    /// Bytes of the current P-DATA-TF whose items have not been parsed yet.
    pdata_left: u32,
    value: Option<Value>,
    /// Bytes at the front of `buffer` handed to the caller by the last call.
    handed_out: usize,
}

impl PduReader {
    /// A reader refusing PDUs longer than `max_pdu_length`, the maximum this side announced.
    pub fn new(max_pdu_length: u32) -> Self {
        Self { buffer: BytesMut::with_capacity(4 * READ_ROOM), max_pdu_length, pdata_left: 0, value: None, handed_out: 0 }
    }

    /// The next value bytes or PDU. Cancel safe: bytes read stay in the buffer.
    pub async fn next<S: AsyncRead + Unpin>(&mut self, socket: &mut S) -> Result<Received<'_>, PduError> {
        self.buffer.advance(std::mem::take(&mut self.handed_out));
        let step = loop {
            if let Some(step) = self.parse()? {
                break step;
            }
            self.buffer.reserve(READ_ROOM);
            if socket.read_buf(&mut self.buffer).await? == 0 {
                return Err(PduError::Closed);
            }
        };
        Ok(match step {
            Step::Value { context_id, command, len, end } => {
                self.handed_out = len;
                Received::Value { context_id, command, bytes: &self.buffer[..len], end }
            }
            Step::Pdu(pdu) => Received::Pdu(pdu),
        })
    }

    /// Parses what the buffer holds as far as it goes; `None` when more bytes are needed.
    fn parse(&mut self) -> Result<Option<Step>, PduError> {
        loop {
            if let Some(value) = self.value.as_mut() {
                if self.buffer.is_empty() && value.left > 0 {
                    return Ok(None);
                }
                let len = self.buffer.len().min(value.left as usize);
                value.left -= len as u32;
                let Value { context_id, command, last_fragment, left } = *value;
                if left == 0 {
                    self.value = None;
                }
                return Ok(Some(Step::Value { context_id, command, len, end: left == 0 && last_fragment }));
            }
            if self.pdata_left > 0 {
                if self.buffer.len() < ITEM_HEADER {
                    return Ok(None);
                }
                let item_length = u32::from_be_bytes([self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]]);
                if item_length < 2 || item_length > self.pdata_left.saturating_sub(4) {
                    return Err(PduError::Malformed("a value's length does not fit its PDU"));
                }
                let (context_id, control) = (self.buffer[4], self.buffer[5]);
                self.buffer.advance(ITEM_HEADER);
                self.pdata_left -= 4 + item_length;
                self.value =
                    Some(Value { context_id, command: control & 1 != 0, last_fragment: control & 2 != 0, left: item_length - 2 });
                continue;
            }
            if self.buffer.len() < PDU_HEADER {
                return Ok(None);
            }
            let length = u32::from_be_bytes([self.buffer[2], self.buffer[3], self.buffer[4], self.buffer[5]]);
            if length > self.max_pdu_length {
                return Err(PduError::TooLarge { length, max: self.max_pdu_length });
            }
            if self.buffer[0] == P_DATA_TF {
                if length < ITEM_HEADER as u32 {
                    return Err(PduError::Malformed("a P-DATA-TF without a value"));
                }
                self.buffer.advance(PDU_HEADER);
                self.pdata_left = length;
                continue;
            }
            let whole = PDU_HEADER + length as usize;
            if self.buffer.len() < whole {
                return Ok(None);
            }
            let mut cursor = Cursor::new(&self.buffer[..whole]);
            let pdu =
                read_pdu(&mut cursor, self.max_pdu_length, true)?.ok_or(PduError::Malformed("a PDU shorter than its length"))?;
            self.buffer.advance(whole);
            return Ok(Some(Step::Pdu(pdu)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use dicom_ul::pdu::{PDataValue, PDataValueType, write_pdu};

    use super::*;

    /// Hands out its bytes a few at a time, as a slow network would.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let end = self.at.saturating_add(self.step).min(self.bytes.len()).min(self.at + buf.remaining());
            buf.put_slice(&self.bytes[self.at..end]);
            self.at = end;
            Poll::Ready(Ok(()))
        }
    }

    fn pdata(values: Vec<(u8, PDataValueType, bool, Vec<u8>)>) -> Pdu {
        let data = values
            .into_iter()
            .map(|(presentation_context_id, value_type, is_last, data)| PDataValue {
                presentation_context_id,
                value_type,
                is_last,
                data,
            })
            .collect();
        Pdu::PData { data }
    }

    /// Reads everything the peer sends: values concatenated per (context, command), with the
    /// number of message ends, and the other PDUs.
    /// A value as read: context, command or data, its bytes, and whether its message ended.
    type Value = (u8, bool, Vec<u8>, bool);

    async fn read_all(bytes: Vec<u8>, step: usize) -> (Vec<Value>, Vec<Pdu>) {
        let mut socket = Trickle { bytes, at: 0, step };
        let mut reader = PduReader::new(16_384);
        let (mut values, mut pdus): (Vec<Value>, Vec<Pdu>) = (Vec::new(), Vec::new());
        loop {
            match reader.next(&mut socket).await {
                Ok(Received::Value { context_id, command, bytes, end }) => match values.last_mut() {
                    Some(last) if !last.3 && last.0 == context_id && last.1 == command => {
                        last.2.extend_from_slice(bytes);
                        last.3 = end;
                    }
                    _ => values.push((context_id, command, bytes.to_vec(), end)),
                },
                Ok(Received::Pdu(pdu)) => pdus.push(pdu),
                Err(PduError::Closed) => return (values, pdus),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn values_arrive_whole_however_the_bytes_are_cut() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let command = pdata(vec![(1, PDataValueType::Command, true, vec![7; 40])]);
        // A data set in two fragments, the first in two values of one PDU.
        let first = pdata(vec![
            (1, PDataValueType::Data, false, data[..3_000].to_vec()),
            (1, PDataValueType::Data, false, data[3_000..6_000].to_vec()),
        ]);
        let second = pdata(vec![(1, PDataValueType::Data, true, data[6_000..].to_vec())]);
        for pdu in [command, first, second, Pdu::ReleaseRQ] {
            write_pdu(&mut wire, &pdu).expect("encode");
        }
        for step in [1, 5, 4_096, usize::MAX] {
            let (values, pdus) = read_all(wire.clone(), step).await;
            assert_eq!(values.len(), 2, "step {step}");
            assert_eq!(values[0], (1, true, vec![7; 40], true), "step {step}");
            assert_eq!(values[1], (1, false, data.clone(), true), "step {step}");
            assert!(matches!(pdus.as_slice(), [Pdu::ReleaseRQ]), "step {step}");
        }
    }

    #[tokio::test]
    async fn a_pdu_over_the_announced_maximum_is_refused() {
        let mut wire = Vec::new();
        write_pdu(&mut wire, &pdata(vec![(1, PDataValueType::Data, true, vec![0; 20_000])])).expect("encode");
        let mut socket = Trickle { bytes: wire, at: 0, step: usize::MAX };
        let mut reader = PduReader::new(16_384);
        assert!(matches!(reader.next(&mut socket).await, Err(PduError::TooLarge { length: 20_006, max: 16_384 })));
    }
}
