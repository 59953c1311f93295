-- Components-V2: the component catalogue.
CREATE TABLE component (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    mpn         text        NOT NULL,
    manufacturer text       NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (manufacturer, mpn)
);

CREATE FUNCTION component_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.description := coalesce(NEW.description, '');
    RETURN NEW;
END;
$$;

CREATE TRIGGER component_touch BEFORE INSERT OR UPDATE ON component
    FOR EACH ROW EXECUTE FUNCTION component_touch();
