use super::*;

#[test]
fn every_kind_decodes_has_a_schema_and_builds_or_says_why() {
    let mut generator = SchemaGenerator::default();
    for role in [Role::Source, Role::Transform, Role::Sink] {
        assert!(!role.kinds().is_empty());
        for kind in role.kinds() {
            assert!(
                StageConfig::schema(role, kind, &mut generator).is_some(),
                "{role:?} {kind}"
            );
            // An empty table: decoded, or refused by serde (required keys) naming a key.
            let empty = toml::Table::new();
            match StageConfig::decode(role, kind, toml::Value::Table(empty)) {
                Ok(Some(c)) => {
                    // Kinds without required keys: the row maps to the right variant.
                    assert_eq!(
                        c.kind().one_to_one(),
                        kind == "annotate" && role == Role::Transform
                    );
                }
                Ok(None) => panic!("{role:?} {kind} is listed but does not decode"),
                Err(e) => assert!(
                    e.to_string().contains("missing field"),
                    "{role:?} {kind}: {e}"
                ),
            }
        }
        assert!(
            StageConfig::decode(role, "nope", toml::Value::Table(Default::default()))
                .unwrap()
                .is_none()
        );
        assert!(StageConfig::schema(role, "nope", &mut generator).is_none());
    }
    assert_eq!(
        Role::Transform.kinds(),
        ["annotate", "compact", "filter", "window"]
    );
    assert_eq!(Role::Sink.kinds(), ["archive", "ddl", "file", "kinesis"]);
}
