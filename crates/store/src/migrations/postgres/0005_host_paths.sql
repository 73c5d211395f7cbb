-- OpenIDCS defines `images_path` as the directory of OS images and
-- `system_path` as where VM disks live; ironidc had them the other way
-- round. Swap the stored values so each host keeps its directories.
UPDATE hosts SET config = (
    config::jsonb
    || jsonb_build_object(
        'images_path', COALESCE(config::jsonb -> 'system_path', '""'::jsonb),
        'system_path', COALESCE(config::jsonb -> 'images_path', '""'::jsonb)
    )
)::text;
