SELECT lo_unlink(data) FROM binary_content;
DROP TABLE binary_content;
DROP TABLE resource_identifiers;
DROP TABLE resource_versions;
DROP TABLE resources;
