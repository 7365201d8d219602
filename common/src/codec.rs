//! The gRPC codec of every Rigger service: prost, with small initial
//! buffers. A master holds one long-lived `WatchCatalog` stream per node;
//! tonic's default 8 KiB encode buffer per stream was a fifth of what each
//! idle agent cost it. Buffers still grow for large messages (catalogs,
//! blob chunks) and are yielded at the same threshold.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Initial encode and decode buffer of each call.
const INITIAL_BUFFER: usize = 1024;
/// Encoded bytes a stream sends before it yields (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// `ProstCodec` with [`INITIAL_BUFFER`]-byte buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD))
    }
}
