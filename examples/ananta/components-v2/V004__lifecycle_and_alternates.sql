-- Lifecycle status from the manufacturers' notices, and alternates: parts a
-- BOM line may use instead when its component is not recommended any more.
ALTER TABLE component
    ADD COLUMN lifecycle text NOT NULL DEFAULT 'active'
        CONSTRAINT component_lifecycle_valid
        CHECK (lifecycle IN ('active', 'nrnd', 'last_time_buy', 'obsolete')),
    ADD COLUMN lifecycle_changed_at timestamptz;

CREATE TABLE component_alternate (
    component_id bigint NOT NULL REFERENCES component (id) ON DELETE CASCADE,
    alternate_id bigint NOT NULL REFERENCES component (id) ON DELETE CASCADE,
    kind         text   NOT NULL DEFAULT 'drop_in'
        CHECK (kind IN ('drop_in', 'functional', 'pin_compatible')),
    PRIMARY KEY (component_id, alternate_id),
    CHECK (component_id <> alternate_id)
);

-- Stamps lifecycle_changed_at when the status changes, and refuses to bring an
-- obsolete part back: a new revision gets a new row.
CREATE FUNCTION component_lifecycle_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.lifecycle IS DISTINCT FROM OLD.lifecycle THEN
        IF OLD.lifecycle = 'obsolete' THEN
            RAISE EXCEPTION 'component % (% %) is obsolete and cannot become %',
                OLD.id, OLD.manufacturer, OLD.mpn, NEW.lifecycle
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.lifecycle_changed_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER component_lifecycle_guard BEFORE UPDATE OF lifecycle ON component
    FOR EACH ROW EXECUTE FUNCTION component_lifecycle_guard();

-- Two more parts, the alternates of the seeded ones: the NE555's CMOS
-- successor and the LM358 in an SOIC-8 package. The NE555 becomes NRND.
COPY component (mpn, manufacturer, description, lifecycle) FROM stdin;
TLC555CP	Texas Instruments	LinCMOS timer	active
LM358DR	Texas Instruments	Dual op-amp, SOIC-8	active
\.

INSERT INTO component_alternate (component_id, alternate_id, kind)
SELECT a.id, b.id, v.kind
  FROM (VALUES ('NE555', 'TLC555CP', 'functional'),
               ('LM358', 'LM358DR',  'pin_compatible')) AS v (mpn, alt_mpn, kind)
  JOIN component a ON a.mpn = v.mpn
  JOIN component b ON b.mpn = v.alt_mpn;

UPDATE component SET lifecycle = 'nrnd' WHERE manufacturer = 'STMicroelectronics' AND mpn = 'NE555';
