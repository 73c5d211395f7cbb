-- OpenIDCS defines `images_path` as the directory of OS images and
-- `system_path` as where VM disks live; ironidc had them the other way
-- round. Swap the stored values so each host keeps its directories.
UPDATE hosts SET config = json_set(
    config,
    '$.images_path', COALESCE(json_extract(config, '$.system_path'), ''),
    '$.system_path', COALESCE(json_extract(config, '$.images_path'), '')
);
