use super::*;

#[test]
fn urls_split_into_bucket_and_prefix() {
    let s = S3Store::new(
        "s3://acme/kinesis/archive/",
        AwsSettings::default(),
        Encryption::default(),
    )
    .unwrap();
    assert_eq!(s.bucket, "acme");
    assert_eq!(
        s.full("stream=o/x.json.gz"),
        "kinesis/archive/stream=o/x.json.gz"
    );
    assert_eq!(s.url(), "s3://acme/kinesis/archive");
    let root = S3Store::new("s3://acme", AwsSettings::default(), Encryption::default()).unwrap();
    assert_eq!(root.full("k"), "k");
    assert!(S3Store::new("s3:///x", AwsSettings::default(), Encryption::default()).is_err());
}
