//! Orders and worklist figures: orders/create requests/s, and modality worklist C-FIND latency
//! with 10,000 scheduled orders filtered by station and date.

use std::time::Instant;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN};
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
use wasmpacs_tests::{Backend, NODE_A, Options, SERVER_AE, TestServer, component, orders_manifest, patients_manifest};

use crate::{summary, us, wrk};

const MWL_FIND: &str = "1.2.840.10008.5.1.4.31";

async fn server(backend: Backend) -> TestServer {
    let mut options = Options::new(backend);
    options.manifest = Some(format!("{}{}", patients_manifest(&component("patients")), orders_manifest(&component("orders"))));
    TestServer::start_with(options).await.expect("server")
}

/// orders/create requests/s (wrk, 32 connections).
pub async fn create_throughput(backend: Backend) {
    let s = server(backend).await;
    match wrk(&format!("{}/orders/create", s.base), 32, 8, Some("orders.lua")) {
        Some(run) => {
            assert_eq!(run.non_2xx, 0, "every order is created");
            println!(
                "orders/create on {:<10} wrk 32 conns: {:>7.0} req/s   p50 {:>10}  p99 {:>10}",
                format!("{backend:?}"),
                run.requests_per_s,
                us(run.p50),
                us(run.p99)
            );
        }
        None => println!("orders/create: wrk not installed (apt-get install wrk)"),
    }
    s.stop().await;
}

fn element(tag: dicom_core::Tag, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value)
}

fn encode(object: &InMemDicomObject, explicit: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let ts = if explicit { EXPLICIT_VR_LITTLE_ENDIAN.erased() } else { IMPLICIT_VR_LITTLE_ENDIAN.erased() };
    object.write_dataset_with_ts(&mut out, &ts).expect("encode");
    out
}

fn find_command(message_id: u16) -> Vec<u8> {
    let body = encode(
        &InMemDicomObject::from_element_iter([
            element(tags::AFFECTED_SOP_CLASS_UID, VR::UI, PrimitiveValue::from(format!("{MWL_FIND}\0"))),
            element(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0020u16)),
            element(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
            element(tags::PRIORITY, VR::US, PrimitiveValue::from(0u16)),
            element(tags::COMMAND_DATA_SET_TYPE, VR::US, PrimitiveValue::from(0x0000u16)),
        ]),
        false,
    );
    let mut out = vec![0, 0, 0, 0, 4, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn identifier(station: &str, date: &str) -> Vec<u8> {
    let step = InMemDicomObject::from_element_iter([
        element(tags::SCHEDULED_STATION_AE_TITLE, VR::AE, PrimitiveValue::from(station)),
        element(tags::SCHEDULED_PROCEDURE_STEP_START_DATE, VR::DA, PrimitiveValue::from(date)),
        element(tags::MODALITY, VR::CS, PrimitiveValue::Empty),
    ]);
    encode(
        &InMemDicomObject::from_element_iter([
            element(tags::PATIENT_NAME, VR::PN, PrimitiveValue::Empty),
            element(tags::PATIENT_ID, VR::LO, PrimitiveValue::Empty),
            DataElement::new(
                tags::SCHEDULED_PROCEDURE_STEP_SEQUENCE,
                VR::SQ,
                dicom_core::value::DataSetSequence::from(vec![step]),
            ),
        ]),
        true,
    )
}

fn status_of(command: &[u8]) -> u16 {
    let object = InMemDicomObject::read_dataset_with_ts(command, &IMPLICIT_VR_LITTLE_ENDIAN.erased()).expect("command");
    object.element(tags::STATUS).expect("status").to_int::<u16>().expect("status value")
}

/// Worklist C-FIND latency over one association: 10 stations x 1,000 orders over 10 days; each
/// query names a station and a day (about 100 answers).
pub async fn find_latency(backend: Backend) {
    let mut s = server(backend).await;
    for station in 0..10 {
        s.seed_orders("alpha", &format!("ROOM-{station}"), 1_000).await;
    }
    let mut association = ClientAssociationOptions::new()
        .calling_ae_title(NODE_A)
        .called_ae_title(SERVER_AE)
        .with_presentation_context(MWL_FIND, vec!["1.2.840.10008.1.2.1"])
        .establish_with_async(&format!("127.0.0.1:{}", s.dicom_port))
        .await
        .expect("association");
    let context = association.presentation_contexts()[0].id;
    let mut samples = Vec::new();
    let mut answers = 0;
    for i in 0..220u16 {
        let started = Instant::now();
        let pdvs = vec![
            PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Command,
                is_last: true,
                data: find_command(i + 1),
            },
            PDataValue {
                presentation_context_id: context,
                value_type: PDataValueType::Data,
                is_last: true,
                data: identifier(&format!("ROOM-{}", i % 10), &format!("202501{:02}", i % 10 + 1)),
            },
        ];
        association.send(&Pdu::PData { data: pdvs }).await.expect("send");
        let mut pending = 0;
        'answers: loop {
            match association.receive().await.expect("receive") {
                Pdu::PData { data } => {
                    for pdv in data {
                        if pdv.value_type == PDataValueType::Command && pdv.is_last {
                            match status_of(&pdv.data) {
                                0xFF00 | 0xFF01 => pending += 1,
                                0x0000 => break 'answers,
                                other => panic!("C-FIND failed with status {other:04X}"),
                            }
                        }
                    }
                }
                other => panic!("unexpected PDU {other:?}"),
            }
        }
        if i >= 20 {
            samples.push(started.elapsed());
            answers += pending;
        }
    }
    let _ = association.release().await;
    let n = samples.len();
    let (p50, p99) = summary(samples);
    println!(
        "worklist C-FIND on {:<10} 10,000 orders, by station and date ({} answers each): p50 {:>10}  p99 {:>10}",
        format!("{backend:?}"),
        answers / n,
        us(p50),
        us(p99)
    );
    s.stop().await;
}
