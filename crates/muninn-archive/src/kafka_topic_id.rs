//! Kafka topic ids (the UUID a broker gives a topic when it creates it, new for a topic
//! deleted and created again), read with librdkafka's `rd_kafka_DescribeTopics`, which rdkafka
//! does not wrap. The recorder stamps them on its manifests, so it can tell a recreated topic
//! from the one it archived and never skip the new topic's offsets as already archived.
//!
//! The workspace's second `unsafe` module (after the SDK's `kafka/recycle.rs`): one admin
//! request on a queue of our own, every object freed on every path (see each call).

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

const NO_ERROR: rd::rd_kafka_resp_err_t = rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;

/// Kafka's text form of a topic id: URL-safe base64 of its 16 bytes, without padding (what
/// `kafka-topics.sh --describe` prints).
fn kafka_text(most: i64, least: i64) -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&most.to_be_bytes());
    bytes[8..].copy_from_slice(&least.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The ids of `topics` (blocking, up to `timeout`); a topic the broker does not know, or a
/// broker that gives no ids (all zero, before Kafka 2.8), is left out.
pub(crate) fn topic_ids(
    admin: &AdminClient<DefaultClientContext>,
    topics: &[String],
    timeout: Duration,
) -> Result<HashMap<String, String>, String> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let names: Vec<CString> = topics
        .iter()
        .map(|topic| CString::new(topic.as_str()).map_err(|error| error.to_string()))
        .collect::<Result<_, _>>()?;
    let mut pointers: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
    let milliseconds = timeout.as_millis().min(i32::MAX as u128) as i32;
    // Borrowed: valid while `admin` lives, which the borrow guarantees.
    let client = admin.inner().native_ptr();
    // SAFETY: every pointer passed is valid for the call; the queue, collection, options and
    // event are created here and destroyed here on every path; the result objects are
    // borrowed from the event and read before it is destroyed.
    unsafe {
        let queue = rd::rd_kafka_queue_new(client);
        // Copies the names.
        let collection =
            rd::rd_kafka_TopicCollection_of_topic_names(pointers.as_mut_ptr(), pointers.len());
        let options = rd::rd_kafka_AdminOptions_new(
            client,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        );
        let mut error_text = [0 as c_char; 256];
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options,
            milliseconds,
            error_text.as_mut_ptr(),
            error_text.len(),
        );
        // Copies the collection and the options: both can go right after.
        rd::rd_kafka_DescribeTopics(client, collection, options, queue);
        rd::rd_kafka_TopicCollection_destroy(collection);
        rd::rd_kafka_AdminOptions_destroy(options);

        // One result event; null when it did not come in time (a late one is then dropped
        // by librdkafka with the queue).
        let event = rd::rd_kafka_queue_poll(queue, milliseconds.saturating_add(5_000));
        let result = if event.is_null() {
            Err(format!("no answer to DescribeTopics within {timeout:?}"))
        } else if rd::rd_kafka_event_error(event) != NO_ERROR {
            Err(CStr::from_ptr(rd::rd_kafka_event_error_string(event))
                .to_string_lossy()
                .into_owned())
        } else {
            let answer = rd::rd_kafka_event_DescribeTopics_result(event);
            let mut count = 0usize;
            let descriptions = rd::rd_kafka_DescribeTopics_result_topics(answer, &mut count);
            let mut ids = HashMap::new();
            if !answer.is_null() && !descriptions.is_null() {
                for index in 0..count {
                    let description = *descriptions.add(index);
                    let error = rd::rd_kafka_TopicDescription_error(description);
                    if !error.is_null() && rd::rd_kafka_error_code(error) != NO_ERROR {
                        continue;
                    }
                    let name = CStr::from_ptr(rd::rd_kafka_TopicDescription_name(description))
                        .to_string_lossy()
                        .into_owned();
                    let id = rd::rd_kafka_TopicDescription_topic_id(description);
                    if id.is_null() {
                        continue;
                    }
                    let most = rd::rd_kafka_Uuid_most_significant_bits(id);
                    let least = rd::rd_kafka_Uuid_least_significant_bits(id);
                    if (most, least) != (0, 0) {
                        ids.insert(name, kafka_text(most, least));
                    }
                }
            }
            Ok(ids)
        };
        if !event.is_null() {
            rd::rd_kafka_event_destroy(event);
        }
        rd::rd_kafka_queue_destroy(queue);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_kafka_prints_them() {
        // 01a23fe8-b108-7233-9029-24f194a06db6, as tansu gave it and Kafka's tools print it.
        assert_eq!(
            kafka_text(117_726_808_900_137_523, -8_058_869_438_203_531_850),
            "AaI_6LEIcjOQKSTxlKBttg"
        );
    }
}
