//! DIMSE command sets (group 0000, always implicit VR little endian): reading requests and
//! writing responses.

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// Command Field values used here.
pub mod field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_FIND_RQ: u16 = 0x0020;
    pub const C_FIND_RSP: u16 = 0x8020;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
    pub const C_CANCEL_RQ: u16 = 0x0FFF;
}

/// DIMSE status codes used here.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const PENDING: u16 = 0xFF00;
    pub const CANCEL: u16 = 0xFE00;
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    pub const DATA_SET_DOES_NOT_MATCH: u16 = 0xA900;
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    pub const IDENTIFIER_DOES_NOT_MATCH: u16 = 0xA900;
}

/// Value of Command Data Set Type meaning "no data set follows".
pub const NO_DATA_SET: u16 = 0x0101;

/// A request's command set.
#[derive(Debug, Clone)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    /// Message ID Being Responded To (for C-CANCEL).
    pub responding_to: u16,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub has_data_set: bool,
    /// Status (of a response; `None` when absent).
    pub status: Option<u16>,
}

/// Why a command set could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed DIMSE command: {0}")]
pub struct CommandError(String);

fn text(object: &InMemDicomObject, tag: Tag) -> String {
    object.get(tag).and_then(|e| e.to_str().ok().map(|s| s.trim_end_matches(['\0', ' ']).to_owned())).unwrap_or_default()
}

fn number(object: &InMemDicomObject, tag: Tag) -> Option<u16> {
    object.get(tag).and_then(|e| e.to_int::<u16>().ok())
}

/// Reads a command set.
pub fn parse_command(bytes: &[u8]) -> Result<Command, CommandError> {
    let object = InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| CommandError(e.to_string()))?;
    Ok(Command {
        field: number(&object, tags::COMMAND_FIELD).ok_or_else(|| CommandError("no Command Field".into()))?,
        message_id: number(&object, tags::MESSAGE_ID).unwrap_or(0),
        responding_to: number(&object, tags::MESSAGE_ID_BEING_RESPONDED_TO).unwrap_or(0),
        sop_class_uid: text(&object, tags::AFFECTED_SOP_CLASS_UID),
        sop_instance_uid: text(&object, tags::AFFECTED_SOP_INSTANCE_UID),
        has_data_set: number(&object, tags::COMMAND_DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET),
        status: number(&object, tags::STATUS),
    })
}

/// Encodes a command set, computing its Command Group Length.
pub fn encode(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let object = InMemDicomObject::from_element_iter(elements);
    let mut body = Vec::new();
    object
        .write_dataset_with_ts(&mut body, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command set to memory cannot fail");
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&0x0000u16.to_le_bytes());
    out.extend_from_slice(&0x0000u16.to_le_bytes());
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn us(tag: Tag, value: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, PrimitiveValue::from(value))
}

fn ui(tag: Tag, value: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(value))
}

/// A C-STORE request command: a data set follows, at medium priority.
pub fn store_request(message_id: u16, sop_class_uid: &str, sop_instance_uid: &str) -> Vec<u8> {
    encode(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, sop_class_uid),
        us(tags::COMMAND_FIELD, field::C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0x0000),
        us(tags::COMMAND_DATA_SET_TYPE, 0x0000),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid),
    ])
}

/// A response command: field, the request it answers, status, and whether a data set follows.
pub fn response(field: u16, request: &Command, status: u16, with_data_set: bool, comment: Option<&str>) -> Vec<u8> {
    let mut elements = vec![
        us(tags::COMMAND_FIELD, field),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, request.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, if with_data_set { 0x0000 } else { NO_DATA_SET }),
        us(tags::STATUS, status),
    ];
    if !request.sop_class_uid.is_empty() {
        elements.push(ui(tags::AFFECTED_SOP_CLASS_UID, &request.sop_class_uid));
    }
    if field == field::C_STORE_RSP && !request.sop_instance_uid.is_empty() {
        elements.push(ui(tags::AFFECTED_SOP_INSTANCE_UID, &request.sop_instance_uid));
    }
    if let Some(comment) = comment {
        let mut c: String = comment.chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(64).collect();
        if c.len() % 2 == 1 {
            c.push(' ');
        }
        elements.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, PrimitiveValue::from(c)));
    }
    encode(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_reads_back_with_its_group_length() {
        let request = Command {
            field: field::C_STORE_RQ,
            message_id: 7,
            responding_to: 0,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            sop_instance_uid: "1.2.3".into(),
            has_data_set: true,
            status: None,
        };
        let bytes = response(field::C_STORE_RSP, &request, status::OUT_OF_RESOURCES, false, None);
        let group_length = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(group_length, bytes.len() - 12);
        let back = parse_command(&bytes).unwrap();
        assert_eq!((back.field, back.responding_to, back.has_data_set), (field::C_STORE_RSP, 7, false));
        assert_eq!(back.sop_instance_uid, "1.2.3");
        assert_eq!(back.status, Some(status::OUT_OF_RESOURCES));
    }

    #[test]
    fn a_store_request_reads_back() {
        let bytes = store_request(9, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4");
        let back = parse_command(&bytes).unwrap();
        assert_eq!((back.field, back.message_id, back.has_data_set), (field::C_STORE_RQ, 9, true));
        assert_eq!((back.sop_class_uid.as_str(), back.sop_instance_uid.as_str()), ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"));
    }
}
