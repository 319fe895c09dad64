use super::*;

#[test]
fn text_over_its_limit_is_refused_both_ways() {
    assert!(Text::<4>::new("abcd").is_ok());
    assert_eq!(
        Text::<4>::new("abcde").unwrap_err(),
        TooLong { len: 5, max: 4 }
    );
    // A length prefix above the limit is rejected before reading the payload.
    let bytes = [0u8, 0, 0, 5, b'a', b'b', b'c', b'd', b'e'];
    assert!(decode::<Text<4>>("text", &bytes).is_err());
}

#[test]
fn text_must_be_utf8() {
    let bytes = [0u8, 0, 0, 2, 0xff, 0xfe];
    let err = decode::<Text<8>>("text", &bytes).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn huge_length_prefix_does_not_allocate() {
    let bytes = [0xffu8, 0xff, 0xff, 0xff];
    assert!(decode::<BoundedVec<u64, { u32::MAX as usize }>>("list", &bytes).is_err());
    assert!(decode::<Blob<{ u32::MAX as usize }>>("blob", &bytes).is_err());
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = encode(&Text::<8>::new("hi").unwrap());
    bytes.push(0);
    assert!(decode::<Text<8>>("text", &bytes).is_err());
}
